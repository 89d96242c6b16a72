"""Reuters newswires: 11,228 newswires as word-id sequences, labelled with one of 46 topics.

Ids are word ranks by frequency; ``load_data`` offsets them by ``index_from`` and marks starts and
out-of-vocabulary words as Keras does. ``get_word_index`` gives the word -> rank mapping and
``get_label_names`` the topics' names.
"""
import json

import numpy

from ..data.sequence_files import load_npz
from . import word_ids
from .downloads import check_test_split, fetch

FILE_HASH = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_HASH = "4d44cc38712099c9e383dc6e5f11a921"
LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee", "sugar",
    "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp",
    "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi", "iron-steel",
    "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog",
    "lead")


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1,
              oov_char=2, index_from=3):
    """``(x_train, y_train), (x_test, y_test)``: x a 1-D object array of lists of word ids, y the topic ids.

    The newswires are shuffled by ``seed`` as Keras shuffles them; each sequence gets ``start_char`` first and
    its ids plus ``index_from``; with ``maxlen``, sequences of ``maxlen`` ids or more are dropped; ids outside
    ``[skip_top, num_words)`` become ``oov_char`` (or are dropped where it is None); the last ``test_split`` of
    them are the test split.
    """
    check_test_split(test_split)
    word_ids.check_options(num_words=num_words, skip_top=skip_top, maxlen=maxlen, start_char=start_char,
                           oov_char=oov_char, index_from=index_from)
    arrays = load_npz(fetch("reuters.npz", path, FILE_HASH), ("x",), ("y",), "Keras's reuters.npz")
    order = numpy.arange(len(arrays["x"]))
    numpy.random.RandomState(seed).shuffle(order)
    flat, lengths = word_ids.prepare([arrays["x"][i] for i in order], start_char, index_from)
    labels = arrays["y"][order]
    if maxlen:
        keep = lengths < maxlen
        (flat, lengths), labels = word_ids.keep_rows(flat, lengths, keep), labels[keep]
    if not num_words:
        num_words = int(flat.max())
    flat, lengths = word_ids.limit_vocabulary(flat, lengths, skip_top, num_words, oov_char)
    x = word_ids.as_lists(flat, lengths)
    cut = int(len(x) * (1 - test_split))
    return (x[:cut], labels[:cut]), (x[cut:], labels[cut:])


def get_word_index(path="reuters_word_index.json"):
    """The word -> id (frequency rank) dict of the Reuters data, before ``load_data``'s ``index_from`` offset."""
    with open(fetch("reuters_word_index.json", path, WORD_INDEX_HASH)) as f:
        return json.load(f)


def get_label_names():
    """The 46 topics' names, indexed by label."""
    return LABEL_NAMES
