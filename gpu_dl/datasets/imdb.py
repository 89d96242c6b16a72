"""IMDB movie reviews: 25,000 training and 25,000 test reviews as word-id sequences, labelled by sentiment (0, 1).

Ids are word ranks by frequency; ``load_data`` offsets them by ``index_from`` and marks starts and
out-of-vocabulary words as Keras does. ``get_word_index`` gives the word -> rank mapping.
"""
import json

import numpy

from ..data.sequence_files import load_npz
from . import word_ids
from .downloads import fetch

FILE_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3, **kwargs):
    """``(x_train, y_train), (x_test, y_test)``: x a 1-D object array of lists of word ids, y the labels.

    Each split is shuffled by ``seed`` (train first, then test, from one generator, as Keras draws them);
    each sequence gets ``start_char`` first and its ids plus ``index_from``; with ``maxlen``, sequences of
    ``maxlen`` ids or more (``start_char`` counted) are dropped; ids outside ``[skip_top, num_words)`` become
    ``oov_char`` (or are dropped where it is None). Without ``num_words`` it is the largest id, which Keras's
    rule then also marks out of vocabulary.
    """
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {sorted(kwargs)}.")
    word_ids.check_options(num_words=num_words, skip_top=skip_top, maxlen=maxlen, start_char=start_char,
                           oov_char=oov_char, index_from=index_from)
    arrays = load_npz(fetch("imdb.npz", path, FILE_HASH), ("x_train", "x_test"), ("y_train", "y_test"),
                      "Keras's imdb.npz")
    rng = numpy.random.RandomState(seed)
    splits = []
    for part in ("train", "test"):
        order = numpy.arange(len(arrays["x_" + part]))
        rng.shuffle(order)
        flat, lengths = word_ids.prepare([arrays["x_" + part][i] for i in order], start_char, index_from)
        labels = arrays["y_" + part][order]
        if maxlen:
            keep = lengths < maxlen
            (flat, lengths), labels = word_ids.keep_rows(flat, lengths, keep), labels[keep]
            if not len(lengths):
                raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was "
                                 "kept. Increase maxlen.")
        splits.append((flat, lengths, labels))
    flat = numpy.concatenate([s[0] for s in splits])
    lengths = numpy.concatenate([s[1] for s in splits])
    if not num_words:
        num_words = int(flat.max())
    flat, lengths = word_ids.limit_vocabulary(flat, lengths, skip_top, num_words, oov_char)
    x = word_ids.as_lists(flat, lengths)
    n_train = len(splits[0][1])
    return (x[:n_train], splits[0][2]), (x[n_train:], splits[1][2])


def get_word_index(path="imdb_word_index.json"):
    """The word -> id (frequency rank) dict of the IMDB data, before ``load_data``'s ``index_from`` offset."""
    with open(fetch("imdb_word_index.json", path, WORD_INDEX_HASH)) as f:
        return json.load(f)
