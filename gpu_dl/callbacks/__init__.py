"""Keras callbacks: hooks the training loop calls at the start and end of
training, of each epoch and of each batch.

One module per concern: ``base`` (Callback, History, the progress bar and
the list the loop calls), ``monitor`` (watching one logged quantity),
``stopping``, ``learning_rate``, ``history_files`` (CSV and the curves PNG),
``checkpoint``, ``backup`` (resuming an interrupted fit), ``swap_ema``
(evaluating with the weight averages), ``tensorboard`` (event files for
TensorBoard; it needs tensorboardX only once a TensorBoard callback is made)
and ``remote`` (each epoch's logs posted to an HTTP server).
"""
from .backup import BackupAndRestore
from .base import Callback, CallbackList, History, LambdaCallback, ProgbarLogger
from .checkpoint import ModelCheckpoint
from .history_files import CSVLogger, TrainingCurves
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .monitor import MonitorCallback
from .remote import RemoteMonitor
from .stopping import EarlyStopping, TerminateOnNaN
from .swap_ema import SwapEMAWeights
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "LambdaCallback", "ProgbarLogger", "MonitorCallback",
           "EarlyStopping", "TerminateOnNaN", "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger",
           "TrainingCurves", "ModelCheckpoint", "SwapEMAWeights", "BackupAndRestore", "TensorBoard", "RemoteMonitor"]
