"""Learning-rate schedules: Keras 3's formulas at many steps, staircase/cycle/warm-up variants, config, errors."""
import math
import os
import warnings

import numpy
import pytest

from gpu_dl.optimizers import schedules

STEPS = [0, 1, 2, 3, 7, 17, 33, 100, 1000]


def exponential(step, lr0, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr0 * rate ** (math.floor(p) if staircase else p)


def inverse_time(step, lr0, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr0 / (1 + rate * (math.floor(p) if staircase else p))


def piecewise(step, boundaries, values):
    for b, v in zip(boundaries, values):
        if step <= b:
            return v
    return values[-1]


def polynomial(step, lr0, decay_steps, end, power, cycle):
    if cycle:
        decay_steps = decay_steps * max(1, math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (lr0 - end) * (1 - step / decay_steps) ** power + end


def cosine(step, lr0, decay_steps, alpha, warmup_target=None, warmup_steps=0):
    if warmup_target is not None:
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return lr0 + (warmup_target - lr0) * step / warmup_steps
        lr0, step = warmup_target, step - warmup_steps
    step = min(step, decay_steps)
    return lr0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)


def restarts(step, lr0, first, t_mul, m_mul, alpha):
    # Walk the periods one by one.
    start, length, peak = 0.0, float(first), 1.0
    while step >= start + length:
        start, length, peak = start + length, length * t_mul, peak * m_mul
    fraction = (step - start) / length
    return lr0 * ((1 - alpha) * peak * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha)


CASES = [
    (schedules.ExponentialDecay(0.1, 7, 0.5), lambda s: exponential(s, 0.1, 7, 0.5, False)),
    (schedules.ExponentialDecay(0.1, 7, 0.5, staircase=True), lambda s: exponential(s, 0.1, 7, 0.5, True)),
    (schedules.InverseTimeDecay(0.2, 3, 0.7), lambda s: inverse_time(s, 0.2, 3, 0.7, False)),
    (schedules.InverseTimeDecay(0.2, 3, 0.7, staircase=True), lambda s: inverse_time(s, 0.2, 3, 0.7, True)),
    (schedules.PiecewiseConstantDecay([3, 17], [1.0, 0.5, 0.1]), lambda s: piecewise(s, [3, 17], [1.0, 0.5, 0.1])),
    (schedules.PolynomialDecay(0.1, 33), lambda s: polynomial(s, 0.1, 33, 0.0001, 1.0, False)),
    (schedules.PolynomialDecay(0.1, 17, 0.01, power=0.5, cycle=True),
     lambda s: polynomial(s, 0.1, 17, 0.01, 0.5, True)),
    (schedules.CosineDecay(0.1, 33), lambda s: cosine(s, 0.1, 33, 0.0)),
    (schedules.CosineDecay(0.1, 33, alpha=0.2), lambda s: cosine(s, 0.1, 33, 0.2)),
    (schedules.CosineDecay(0.0, 33, warmup_target=0.3, warmup_steps=17),
     lambda s: cosine(s, 0.0, 33, 0.0, 0.3, 17)),
    (schedules.CosineDecay(0.01, 33, alpha=0.1, warmup_target=0.3, warmup_steps=0),
     lambda s: cosine(s, 0.01, 33, 0.1, 0.3, 0)),
    (schedules.CosineDecayRestarts(0.1, 3), lambda s: restarts(s, 0.1, 3, 2.0, 1.0, 0.0)),
    (schedules.CosineDecayRestarts(0.1, 3, t_mul=1.0, m_mul=0.5, alpha=0.1),
     lambda s: restarts(s, 0.1, 3, 1.0, 0.5, 0.1)),
]
IDS = [f"{type(s).__name__}-{i}" for i, (s, _) in enumerate(CASES)]


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_schedule_follows_keras_formula(schedule, formula):
    for step in STEPS:
        value = schedule(step)
        assert isinstance(value, float)
        assert value == pytest.approx(formula(step), rel=1e-12, abs=1e-15), f"step {step}"


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_schedule_accepts_an_array_of_steps(schedule, formula):
    values = schedule(numpy.array(STEPS))
    numpy.testing.assert_allclose(values, [formula(s) for s in STEPS], rtol=1e-12, atol=1e-15)


def test_staircase_holds_within_a_period():
    s = schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)
    assert s(0) == s(9) == 1.0 and s(10) == s(19) == 0.5 and s(20) == 0.25


def test_piecewise_boundary_belongs_to_the_interval_it_ends():
    s = schedules.PiecewiseConstantDecay([5, 10], [3.0, 2.0, 1.0])
    assert [s(k) for k in (4, 5, 6, 10, 11)] == [3.0, 3.0, 2.0, 2.0, 1.0]


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_config_round_trip(schedule, formula):
    again = schedules.deserialize(schedules.serialize(schedule))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
    assert again(17) == schedule(17)


@pytest.mark.parametrize("make,word", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: schedules.InverseTimeDecay(0.1, -1, 0.5), "decay_steps"),
    (lambda: schedules.PolynomialDecay(0.1, 0), "decay_steps"),
    (lambda: schedules.CosineDecay(0.1, 0), "decay_steps"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), "first_decay_steps"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5]), "boundaries"),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1]), "increasing"),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), "initial_learning_rate"),
])
def test_bad_arguments_raise(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_deserialize_rejects_unknown_names():
    with pytest.raises(ValueError, match="ExponentialDecay|exponentialdecay"):
        schedules.deserialize({"class_name": "ExponentalDecay", "config": {}})
    with pytest.raises(TypeError):
        schedules.deserialize("ExponentialDecay")


def test_base_class_must_be_overridden():
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_matches_keras(schedule, formula):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras = pytest.importorskip("keras")
    theirs = getattr(keras.optimizers.schedules, type(schedule).__name__).from_config(schedule.get_config())
    for step in STEPS:
        # Keras evaluates in float32.
        expected = float(keras.ops.convert_to_numpy(theirs(step)))
        assert schedule(step) == pytest.approx(expected, rel=2e-6, abs=1e-8), f"step {step}"
