"""Keras's ``keras.datasets``: each module's ``load_data()`` downloads its data set once into Keras's cache
(``$KERAS_HOME/datasets``, else ``~/.keras/datasets``, through ``gpu_dl.utils.get_file``: hash-checked, atomic),
then reads it with gpu_dl's readers, which never run code from a file (the pickles of CIFAR and of the word-id
lists of IMDB and Reuters are unpickled with a restricted unpickler). A file already in the cache with the right
hash is not downloaded again, so a machine without a network uses the copy put there beforehand. The arrays
returned are Keras's: same names, shapes, dtypes, order and splits.

``gpu_dl.data`` holds the offline readers these build on (``load_mnist(path)`` and the rest), which also read
files from other places and never download.
"""
from . import (boston_housing, california_housing, cifar10, cifar100, fashion_mnist, imdb, mnist,
               reuters)

__all__ = ["boston_housing", "california_housing", "cifar10", "cifar100", "fashion_mnist", "imdb", "mnist",
           "reuters"]
