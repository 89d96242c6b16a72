"""SwapEMAWeights: evaluate (and optionally checkpoint) with the optimizer's weight averages (Keras 3's callback)."""
from __future__ import annotations

from ..optimizers import averaging
from .base import Callback


class SwapEMAWeights(Callback):
    """Swap the model's weights with the optimizer's moving averages around evaluation (Keras 3's callback).

    The model's optimizer must have ``use_ema=True``. At ``on_test_begin`` and
    ``on_predict_begin`` the weights and their averages are exchanged in place,
    and exchanged back at ``on_test_end``/``on_predict_end``, so validation
    metrics are those of the averaged weights while training goes on with the
    raw ones. With ``swap_on_epoch=True`` the averages are also in the model
    from ``on_epoch_end`` until the next ``on_epoch_begin``, so callbacks listed
    after this one (``ModelCheckpoint``) see them; at the end of the last epoch
    the averages are set to the swapped-in values, so that ``fit``'s final
    ``finalize_variable_values`` leaves the averages in the model.

    Unlike Keras 3.15, whose ``on_predict_end`` never swaps back, prediction
    restores the raw weights as evaluation does.
    """

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = bool(swap_on_epoch)
        self._ema_weights_in_model = False

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        averaging.require(optimizer, "SwapEMAWeights")
        return optimizer

    def _swap(self):
        averaging.swap(self._optimizer())

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = True
            if epoch == self.params.get("epochs", 0) - 1:
                averaging.copy_variables_to_averages(self._optimizer())

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = True

    def on_test_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = False

    on_predict_begin = on_test_begin
    on_predict_end = on_test_end
