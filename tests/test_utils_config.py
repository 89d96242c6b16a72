"""gpu_dl.utils.Config: entries by attribute and by key, the dict methods, freezing, JSON, and the same behaviour
as Keras 3's keras.utils.Config where Keras is installed."""
import json
import os

import pytest

from gpu_dl.utils import Config


def exercise(cls):
    """What a program does with a Config, and what it sees (the same in both libraries)."""
    seen = []
    config = cls(learning_rate=0.1, momentum=0.9)
    config.use_ema = True
    config["seed"] = 123
    seen.append((config.seed, config["learning_rate"], config.get("missing", "default"), "momentum" in config))
    seen.append((list(config), list(config.keys()), list(config.values()), len(config)))
    seen.append(json.loads(config.to_json()))
    as_dict = config.as_dict()
    as_dict["other"] = 1
    seen.append("other" in config)
    seen.append(config.pop("use_ema"))
    config.update({"zeta": 2}, alpha=3)
    del config["zeta"]
    seen.append(sorted(config.items()))
    config.freeze()
    seen.append(config.frozen)
    for change in (lambda: setattr(config, "x", 1), lambda: config.__setitem__("x", 1),
                   lambda: config.pop("seed"), lambda: config.update(x=1), lambda: config.__delitem__("seed")):
        with pytest.raises(ValueError, match="Cannot mutate attribute\\(s\\) because the config is frozen."):
            change()
    config.unfreeze()
    config.x = 5
    seen.append((config.frozen, config.x))
    with pytest.raises(AttributeError, match="Unknown attribute: 'learnin_rate'. Did you mean 'learning_rate'?"):
        config.learnin_rate
    with pytest.raises(AttributeError, match="Unknown attribute: 'zzz'.$"):
        config.zzz
    seen.append(repr(cls(a=1)))
    return seen


def test_config_behaviour():
    seen = exercise(Config)
    assert seen[0] == (123, 0.1, "default", True)
    assert seen[1] == (["learning_rate", "momentum", "seed", "use_ema"], ["learning_rate", "momentum", "use_ema",
                       "seed"], [0.1, 0.9, True, 123], 4)
    assert seen[2] == {"learning_rate": 0.1, "momentum": 0.9, "use_ema": True, "seed": 123}
    assert seen[3] is False and seen[4] is True
    assert seen[5] == [("alpha", 3), ("learning_rate", 0.1), ("momentum", 0.9), ("seed", 123)]
    assert seen[6] is True and seen[7] == (False, 5)
    assert seen[8] == "<Config {'a': 1}>"


def test_same_as_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    assert exercise(Config) == exercise(keras.utils.Config)
