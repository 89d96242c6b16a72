"""Knowledge distillation, as Keras 3.15's ``keras.distillation``: ``Distiller``, ``DistillationLoss``,
``LogitsDistillation`` and ``FeatureDistillation``.

A ``Distiller(teacher, student, distillation_losses)`` is a model that trains ``student`` on the data's targets
and on what a frozen ``teacher`` makes of the same inputs. Its loss is Keras's::

    total = student_loss_weight * student_loss + (1 - student_loss_weight) * sum_i(weight_i * distillation_i)

where ``student_loss`` is the compiled ``loss`` of the targets and the student's outputs (the mean of its
values), and each ``distillation_i`` a ``DistillationLoss``'s ``compute_loss(teacher_outputs, student_outputs)``:

- ``LogitsDistillation(temperature=3.0, loss="kl_divergence")``: the loss of the teacher's and the student's
  outputs both divided by ``temperature``. A ``losses.KLDivergence`` instance gets the softmax of both and the
  result times ``temperature ** 2`` (Hinton et al.); any other loss, the loss *named* "kl_divergence" (the
  default) included, gets the tempered outputs as they are, as Keras 3.15 computes it (there
  ``keras.losses.get("kl_divergence")`` is a function, not a ``KLDivergence``). Pass
  ``loss=gpu_dl.losses.KLDivergence()`` for the softmax form.
- ``FeatureDistillation(loss="mse", teacher_layer_name=None, student_layer_name=None)``: the loss of the outputs
  of the named layers (the final outputs where a name is None); the models must then be Functional or
  Sequential.

``fit`` logs ``loss`` (= ``total_loss``), ``student_loss``, ``distillation_loss`` and the compiled metrics of the
student's outputs. Only the student's weights train: the teacher is set ``trainable = False``. gpu_dl computes
the gradient of the combined loss by its losses' own gradients (traced ones for the tempered losses), through one
call of the student per step, which gives the final outputs and the features of the named layers together.
"""
from __future__ import annotations

import numbers

from . import losses as losses_module
from . import metrics as metrics_module
from . import ops
from .backprop import LossValue
from .models import Model
from .models.trainer import _batch_size, unpack_x_y_sample_weight

__all__ = ["DistillationLoss", "Distiller", "FeatureDistillation", "LogitsDistillation"]


# ------------------------------------------------------------------ structures
def _is_sequence(value):
    return isinstance(value, (list, tuple))


def _map(fn, *structures):
    """``fn`` over the leaves of ``structures`` (nested lists, tuples and dicts of the same shape)."""
    first = structures[0]
    if isinstance(first, dict):
        return {key: _map(fn, *(s[key] for s in structures)) for key in first}
    if _is_sequence(first):
        return type(first)(_map(fn, *items) for items in zip(*structures))
    return fn(*structures)


def _flatten(structure):
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in _flatten(structure[key])]
    if _is_sequence(structure):
        return [leaf for item in structure for leaf in _flatten(item)]
    return [structure]


def _structure(value):
    if isinstance(value, dict):
        return {key: _structure(value[key]) for key in value}
    if _is_sequence(value):
        return [_structure(item) for item in value]
    return "*"


def assert_same_structure(a, b, what):
    if _structure(a) != _structure(b) or (isinstance(a, dict) and list(a) != list(b)):
        raise ValueError(f"{what}: the structures differ: {_structure(a)} and {_structure(b)}.")


def _total(values):
    """The sum of loss values and numbers (a LossValue where one is)."""
    total = 0.0
    for value in values:
        total = total + value
    return total


# ------------------------------------------------------------------ losses
def _convert_loss(item, owner):
    """A gpu_dl Loss for a loss given by name, as a Loss, or as a function (None stays None)."""
    if item is None:
        return None
    if isinstance(item, str):
        loss = losses_module.get(item)
        if type(loss) is losses_module.KLDivergence:
            # Keras resolves the name to its function, which its LogitsDistillation does not take for a
            # KLDivergence: keep the name's loss apart from a KLDivergence given as one.
            return _NamedKLDivergence(name=loss.name)
        return loss
    if isinstance(item, losses_module.Loss):
        return item
    if callable(item):
        return losses_module.get(item)
    raise TypeError(f"{owner}: a loss must be a name, a gpu_dl Loss, a function or None, got {item!r:.200}.")


class _NamedKLDivergence(losses_module.KLDivergence):
    """The loss of the name "kl_divergence" (Keras's function): the same values as ``KLDivergence``."""


def _mean_reduction(loss):
    # Keras takes the mean of what the loss returns: a scalar as it is, per-sample values averaged.
    return "sum" if loss.reduction == "sum" else "sum_over_batch_size"


class _Tempered(losses_module.Loss):
    """``inner``'s values for ``y_true / temperature`` and ``y_pred / temperature`` (their softmax where
    ``softmax``): written with ops, so its gradient comes from its traced graph."""

    def __init__(self, inner, temperature, softmax):
        super().__init__(name=f"tempered_{inner.name}", reduction=_mean_reduction(inner))
        self.inner, self.temperature, self.softmax = inner, float(temperature), softmax

    def call(self, y_true, y_pred):
        teacher, student = y_true / self.temperature, y_pred / self.temperature
        if self.softmax:
            teacher, student = ops.softmax(teacher, axis=-1), ops.softmax(student, axis=-1)
        return self.inner.call(teacher, student)


def _averaged(loss):
    """``loss``, or where it does not reduce to a scalar, its values averaged."""
    if loss.reduction in ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"):
        return loss
    return _Averaged(loss)


class _Averaged(losses_module.Loss):
    """``inner``'s values averaged (summed where ``inner`` sums), as Keras's ``ops.mean(loss_fn(...))``."""

    def __init__(self, inner):
        super().__init__(name=inner.name, reduction=_mean_reduction(inner))
        self.inner = inner

    def call(self, y_true, y_pred):
        return self.inner.call(y_true, y_pred)


def _from_config_with_loss(cls, config):
    """A distillation loss from its config, whose ``loss`` holds serialized losses (a classmethod of each)."""
    config = dict(config)
    config["loss"] = _deserialize_loss(config["loss"])
    return cls(**config)


class DistillationLoss:
    """Base class of the distillation losses: subclasses define ``compute_loss(teacher_outputs,
    student_outputs)``, a scalar. In gpu_dl it must be built from gpu_dl ``Loss`` objects called on the student's
    outputs (combined with ``+ - *`` and numbers) for its gradient to reach the student."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        raise NotImplementedError("Subclasses must implement compute_loss")

    def validate_outputs(self, teacher_outputs, student_outputs):
        """A ValueError where the teacher's and the student's outputs differ in structure."""
        assert_same_structure(teacher_outputs, student_outputs, type(self).__name__)

    def validate_model_compatibility(self, teacher, student):
        """A ValueError where the models cannot be distilled with this loss (nothing to check here)."""


class FeatureDistillation(DistillationLoss):
    """The loss (``"mse"`` by default; a name, a Loss, a function, or a structure of them matching the outputs,
    None to skip one) between the outputs of the teacher's layer ``teacher_layer_name`` and the student's layer
    ``student_layer_name`` (the final outputs where None): see the module docstring."""

    def __init__(self, loss="mse", teacher_layer_name=None, student_layer_name=None):
        for name, value in (("teacher_layer_name", teacher_layer_name), ("student_layer_name", student_layer_name)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"FeatureDistillation: `{name}` must be a layer name or None, got {value!r}.")
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self._given_loss = loss
        self.loss = _map(lambda item: _convert_loss(item, "FeatureDistillation"), loss)
        if all(item is None for item in _flatten(self.loss)):
            raise ValueError("The `loss` argument in `FeatureDistillation` must contain at least one non-`None` "
                             "value.")
        self._averaged = _map(lambda item: None if item is None else _averaged(item), self.loss)

    def validate_model_compatibility(self, teacher, student):
        if self.teacher_layer_name is not None or self.student_layer_name is not None:
            subclassed = [role for role, model in (("teacher", teacher), ("student", student))
                          if getattr(model, "inputs", None) is None]
            if subclassed:
                raise ValueError(f"FeatureDistillation with specific layer names requires Functional or Sequential "
                                 f"models. The {' and '.join(subclassed)} model(s) appear to be subclassed (no "
                                 "symbolic inputs/outputs). Either use Functional/Sequential models, or use "
                                 "FeatureDistillation without layer names (to distill final outputs only), or use "
                                 "LogitsDistillation instead.")
        for role, model, name in (("teacher", teacher, self.teacher_layer_name),
                                  ("student", student, self.student_layer_name)):
            if name is not None:
                try:
                    model.get_layer(name=name)
                except ValueError as e:
                    raise ValueError(f"In {role} model: {e}") from None

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        try:
            assert_same_structure(self.loss, teacher_outputs, "FeatureDistillation")
        except ValueError as e:
            raise ValueError(f"Loss structure mismatch. Loss structure: {_structure(self.loss)}, Output structure: "
                             f"{_structure(teacher_outputs)}. Error: {e}") from None

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The sum over the outputs of each loss's mean of (teacher features, student features)."""
        values = _map(lambda loss, t, s: 0.0 if loss is None else loss(t, s),
                      self._averaged, teacher_outputs, student_outputs)
        return _total(_flatten(values))

    def get_config(self):
        return {"loss": _map(_serialize_loss, self._given_loss), "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}

    from_config = classmethod(_from_config_with_loss)


class LogitsDistillation(DistillationLoss):
    """The loss (``"kl_divergence"`` by default; a name, a Loss, a function, or a structure of them matching the
    outputs, None to skip one) between the teacher's and the student's final outputs divided by ``temperature``
    (3.0 by default): see the module docstring for the softmax and ``temperature ** 2`` a ``KLDivergence`` gets."""

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        self._given_loss = loss
        self.loss = _map(lambda item: _convert_loss(item, "LogitsDistillation"), loss)
        if all(item is None for item in _flatten(self.loss)):
            raise ValueError("At least one loss must be non-`None`.")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise ValueError(f"temperature must be a number, got {type(temperature)}")
        if temperature <= 0.0:
            raise ValueError("temperature must be positive.")
        self.temperature = temperature
        self._tempered = _map(lambda item: None if item is None else _Tempered(item, temperature, self._is_kl(item)),
                              self.loss)

    @staticmethod
    def _is_kl(loss):
        return isinstance(loss, losses_module.KLDivergence) and not isinstance(loss, _NamedKLDivergence)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The sum over the outputs of each loss's mean of the tempered outputs (times ``temperature ** 2`` for a
        KLDivergence)."""
        def apply(loss, tempered, t, s):
            if loss is None:
                return 0.0
            value = tempered(t, s)
            return value * float(self.temperature) ** 2 if self._is_kl(loss) else value

        return _total(_flatten(_map(apply, self.loss, self._tempered, teacher_outputs, student_outputs)))

    def get_config(self):
        return {"temperature": self.temperature, "loss": _map(_serialize_loss, self._given_loss)}

    from_config = classmethod(_from_config_with_loss)


def _serialize_loss(item):
    if item is None or isinstance(item, str):
        return item
    return losses_module.serialize(_convert_loss(item, "serialize"))


def _deserialize_loss(item):
    """The losses a config's ``loss`` entry describes, in its structure (a dict with a ``class_name`` is one)."""
    if item is None or isinstance(item, str):
        return item
    if isinstance(item, dict) and "class_name" in item:
        return losses_module.deserialize(item)
    if isinstance(item, dict):
        return {key: _deserialize_loss(value) for key, value in item.items()}
    if _is_sequence(item):
        return type(item)(_deserialize_loss(value) for value in item)
    raise ValueError(f"A distillation loss config holds {item!r:.200} as a loss; expected a name, a loss config "
                     "or None.")


# ------------------------------------------------------------------ the model
class Distiller(Model):
    """``Distiller(teacher, student, distillation_losses, distillation_loss_weights=None, student_loss_weight=0.5,
    name="distiller")``: a model training ``student`` from its targets and from ``teacher`` (see the module
    docstring). ``compile(optimizer="adam", loss=..., metrics=None)`` takes the student's loss (required);
    ``distiller.student`` is the trained student, for use on its own."""

    # Its train_step, test_step and compute_loss are run as a user's subclass's are (models/trainer.py).
    _library_steps = True

    def __init__(self, teacher, student, distillation_losses, distillation_loss_weights=None, student_loss_weight=0.5,
                 name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self._validate_models(teacher, student)
        self.teacher = teacher
        self.student = student
        if isinstance(student_loss_weight, bool) or not isinstance(student_loss_weight, numbers.Real):
            raise ValueError(f"student_loss_weight must be a number, got {type(student_loss_weight)}")
        if student_loss_weight < 0.0 or student_loss_weight > 1.0:
            raise ValueError(f"student_loss_weight must be between 0.0 and 1.0, got {student_loss_weight}")
        self.student_loss_weight = student_loss_weight
        if distillation_losses is None:
            raise ValueError("'distillation_losses' cannot be `None`. Provide a distillation loss (e.g., "
                             "LogitsDistillation or FeatureDistillation) or a list of distillation losses.")
        if not isinstance(distillation_losses, (list, tuple)):
            self.distillation_losses = [distillation_losses]
            self.distillation_loss_weights = [1.0]
        else:
            self.distillation_losses = list(distillation_losses)
            if distillation_loss_weights is None:
                self.distillation_loss_weights = [1.0] * len(distillation_losses)
            elif len(distillation_loss_weights) != len(distillation_losses):
                raise ValueError(f"Number of distillation_loss_weights ({len(distillation_loss_weights)}) must match "
                                 f"number of distillation_losses ({len(distillation_losses)})")
            else:
                self.distillation_loss_weights = list(distillation_loss_weights)
        for loss in self.distillation_losses:
            if not isinstance(loss, DistillationLoss):
                raise TypeError(f"Distiller: each distillation loss must be a DistillationLoss (LogitsDistillation, "
                                f"FeatureDistillation or a subclass), got {loss!r:.200}.")
            loss.validate_model_compatibility(teacher, student)
        self._teacher_feature_extractor = self._create_feature_extractor(teacher, "teacher_layer_name")
        self._student_feature_extractor = self._create_feature_extractor(student, "student_layer_name")
        self.teacher.trainable = False
        self.student_loss_tracker = metrics_module.Mean(name="student_loss")
        self.distillation_loss_tracker = metrics_module.Mean(name="distillation_loss")
        self.total_loss_tracker = metrics_module.Mean(name="total_loss")
        self._student_features = None

    # -------------------------------------------------------------- checks
    @staticmethod
    def _validate_models(teacher, student):
        if not isinstance(teacher, Model):
            raise ValueError(f"Teacher must be a gpu_dl Model, got {type(teacher)}")
        if not isinstance(student, Model):
            raise ValueError(f"Student must be a gpu_dl Model, got {type(student)}")
        for what in ("inputs", "outputs"):
            ours, theirs = getattr(teacher, what, None), getattr(student, what, None)
            if ours is None or theirs is None:
                continue
            assert_same_structure(ours, theirs, f"Teacher and student {what}")
            context = what[:-1]
            for t, s in zip(_flatten(ours), _flatten(theirs)):
                t_shape, s_shape = tuple(t.shape), tuple(s.shape)
                if len(t_shape) != len(s_shape):
                    raise ValueError(f"Teacher and student {context} shapes have different dimensions. Teacher: "
                                     f"{t_shape}, Student: {s_shape}.")
                if any(a is not None and b is not None and a != b for a, b in zip(t_shape, s_shape)):
                    raise ValueError(f"Teacher and student {context} shapes are incompatible. Teacher: {t_shape}, "
                                     f"Student: {s_shape}. All dimensions must match.")
                if t.dtype != s.dtype:
                    raise ValueError(f"Teacher and student {context} dtypes must match. Teacher: {t.dtype}, "
                                     f"Student: {s.dtype}.")

    def _create_feature_extractor(self, model, attribute):
        names = []
        for loss in self.distillation_losses:
            name = getattr(loss, attribute, None)
            if name and name not in names:
                names.append(name)
        if not names:
            return None
        if getattr(model, "inputs", None) is None:
            raise ValueError(f"Cannot create feature extractor for {model.name}. The model has no symbolic inputs "
                             "attribute.")
        outputs = {"final_output": model.outputs[0] if len(model.outputs) == 1 else model.outputs}
        for name in names:
            outputs[name] = model.get_layer(name=name).output
        return Model(inputs=model.inputs, outputs=outputs, name=f"{model.name}_multi_feature_extractor")

    # -------------------------------------------------------------- compile and call
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compile for training the student: ``loss`` is the student's loss of the targets (required)."""
        if loss is None:
            raise ValueError("'loss' cannot be `None`.")
        self._student_loss = _map(lambda item: _convert_loss(item, "Distiller.compile"), loss)
        self._student_loss_averaged = _map(_averaged, self._student_loss)
        self._student_loss_for_serialization = loss
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"metrics must be a list or tuple, got {type(metrics)}")
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def call(self, inputs, training=None):
        """The student's outputs."""
        return self.student(inputs, training=training)

    def _student_forward(self, x, training):
        """The student's outputs and the features the distillation losses read, from one call."""
        if self._student_feature_extractor is None:
            y_pred = self.student(x, training=training)
            return y_pred, {"final_output": y_pred}
        features = self._student_feature_extractor(x, training=training)
        return features["final_output"], features

    def _extract_all_teacher_features(self, x):
        if self._teacher_feature_extractor is not None:
            return self._teacher_feature_extractor(x, training=False)
        return {"final_output": self.teacher(x, training=False)}

    # -------------------------------------------------------------- steps
    def train_step(self, data):
        # Keras's torch train step, with the student called once for its outputs and its features.
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred, self._student_features = self._student_forward(x, training=True)
        try:
            self.zero_grad()
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        finally:
            self._student_features = None
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        if not isinstance(loss, LossValue):
            raise ValueError("Distiller: the combined loss has no gradient: the student loss weight is 0 and "
                             "no distillation loss reached the student's outputs.")
        loss.backward()
        variables = self.trainable_weights[:]
        self.optimizer.apply([v.grad for v in variables], variables)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred, self._student_features = self._student_forward(x, training=False)
        try:
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        finally:
            self._student_features = None
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The combined loss (see the module docstring); updates the three loss trackers. Sample weights are not
        used, as in Keras."""
        student_features = self._student_features
        if y_pred is None:
            y_pred, student_features = self._student_forward(x, training=training)
        if student_features is None:
            student_features = self._student_forward(x, training=training)[1] \
                if self._student_feature_extractor is not None else {"final_output": y_pred}
        student_loss = 0.0
        if self.student_loss_weight > 0.0 and y is not None:
            student_loss = _total(_flatten(_map(lambda loss, truth, pred: loss(truth, pred),
                                                self._student_loss_averaged, y, y_pred)))
        distillation_loss = 0.0
        if self.student_loss_weight < 1.0:
            teacher_features = self._extract_all_teacher_features(x)
            for loss, weight in zip(self.distillation_losses, self.distillation_loss_weights):
                if getattr(loss, "teacher_layer_name", None) is not None:
                    teacher_out = self._features(loss, teacher_features, "teacher")
                    student_out = self._features(loss, student_features, "student")
                else:
                    teacher_out, student_out = teacher_features["final_output"], y_pred
                loss.validate_outputs(teacher_out, student_out)
                value = loss.compute_loss(teacher_out, student_out)
                if getattr(value, "shape", ()) != ():
                    raise ValueError(f"Distillation loss {type(loss).__name__} returned a non-scalar loss with "
                                     f"shape {value.shape}. The compute_loss method must return a scalar tensor.")
                distillation_loss = distillation_loss + weight * value
        total = self.student_loss_weight * student_loss + (1.0 - self.student_loss_weight) * distillation_loss
        self.student_loss_tracker.update_state(_value(student_loss))
        self.distillation_loss_tracker.update_state(_value(distillation_loss))
        self.total_loss_tracker.update_state(_value(total))
        return total

    @staticmethod
    def _features(loss, features, role):
        name = getattr(loss, f"{role}_layer_name", None) or "final_output"
        if name not in features:
            raise RuntimeError(f"Failed to extract features for {type(loss).__name__} targeting teacher layer "
                               f"'{loss.teacher_layer_name}' and student layer '{loss.student_layer_name}'. "
                               f"Original error: Layer '{name}' not found in extracted features. Available: "
                               f"{list(features)}")
        return features[name]

    def reset_metrics(self):
        super().reset_metrics()
        self.student_loss_tracker.reset_state()
        self.distillation_loss_tracker.reset_state()
        self.total_loss_tracker.reset_state()

    # -------------------------------------------------------------- config
    def get_config(self):
        from .models.serialization import serialize_keras_object
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype,
                "teacher": serialize_keras_object(self.teacher), "student": serialize_keras_object(self.student),
                "distillation_losses": [{"module": "keras.distillation", "class_name": type(loss).__name__,
                                         "config": loss.get_config(), "registered_name": None}
                                        for loss in self.distillation_losses],
                "distillation_loss_weights": self.distillation_loss_weights,
                "student_loss_weight": self.student_loss_weight}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .models.serialization import deserialize_keras_object
        config = dict(config)
        config.pop("trainable", None)
        config.pop("dtype", None)
        config["teacher"] = deserialize_keras_object(config["teacher"], custom_objects)
        config["student"] = deserialize_keras_object(config["student"], custom_objects)
        known = {"LogitsDistillation": LogitsDistillation, "FeatureDistillation": FeatureDistillation}
        config["distillation_losses"] = [known[entry["class_name"]].from_config(entry["config"])
                                         if entry.get("class_name") in known
                                         else deserialize_keras_object(entry, custom_objects)
                                         for entry in config["distillation_losses"]]
        return cls(**config)


def _value(loss):
    """A loss value's number for a tracker."""
    return float(loss)
