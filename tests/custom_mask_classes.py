"""Custom layers of Keras's guides "Understanding masking & padding" and "Training & evaluation with the built-in
methods", written once for both libraries (``lib`` is ``gpu_dl`` or ``keras``): tests/test_custom_layer_masks.py
runs them in gpu_dl, tests/test_keras_oracle_custom_layer_masks.py against Keras 3."""


def doubler(lib):
    class Doubler(lib.layers.Layer):
        """The guide's opt-in to mask propagation: the output's mask is the input's."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs):
            return inputs * 2.0
    return Doubler


def projected(lib):
    class Projected(lib.layers.Layer):
        """A pass-through of the mask around a sublayer and an operation."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True
            self.dense = lib.layers.Dense(units)

        def call(self, inputs):
            return lib.ops.tanh(self.dense(inputs)) * 0.5
    return Projected


def masked_scale(lib):
    class MaskedScale(lib.layers.Layer):
        """Reads the mask in its call: zeros at the padded steps."""

        def call(self, inputs, mask=None):
            if mask is None:
                return inputs
            return inputs * lib.ops.expand_dims(lib.ops.cast(mask, inputs.dtype), -1)
    return MaskedScale


def temporal_softmax(lib):
    class TemporalSoftmax(lib.layers.Layer):
        """The guide's layer that needs the mask (as written there: the sum runs over the last axis)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            assert mask is not None
            broadcast_float_mask = lib.ops.expand_dims(lib.ops.cast(mask, "float32"), -1)
            inputs_exp = lib.ops.exp(inputs) * broadcast_float_mask
            inputs_sum = lib.ops.sum(inputs_exp * broadcast_float_mask, axis=-1, keepdims=True)
            return inputs_exp / inputs_sum
    return TemporalSoftmax


def softmax_over_time(lib):
    class SoftmaxOverTime(lib.layers.Layer):
        """A softmax over the steps that count (axis 1), from the mask its call gets."""

        def call(self, inputs, mask=None):
            weights = lib.ops.expand_dims(lib.ops.cast(mask, inputs.dtype), -1)
            inputs_exp = lib.ops.exp(inputs) * weights
            return inputs_exp / lib.ops.sum(inputs_exp, axis=1, keepdims=True)
    return SoftmaxOverTime


def temporal_split(lib):
    class TemporalSplit(lib.layers.Layer):
        """The guide's: splits the input in two along the time axis, and its mask with it."""

        def call(self, inputs):
            return lib.ops.split(inputs, 2, axis=1)

        def compute_mask(self, inputs, mask=None):
            if mask is None:
                return None
            return lib.ops.split(mask, 2, axis=1)
    return TemporalSplit


def drop_first_step(lib):
    class DropFirstStep(lib.layers.Layer):
        """Its own compute_mask: the steps after the first, and their mask."""

        def call(self, inputs):
            return inputs[:, 1:]

        def compute_mask(self, inputs, mask=None):
            return None if mask is None else mask[:, 1:]
    return DropFirstStep


def custom_embedding(lib):
    class CustomEmbedding(lib.layers.Layer):
        """The guide's embedding with a mask of its own."""

        def __init__(self, input_dim, output_dim, mask_zero=False, **kwargs):
            super().__init__(**kwargs)
            self.input_dim = input_dim
            self.output_dim = output_dim
            self.mask_zero = mask_zero

        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim), initializer="random_normal",
                                              dtype="float32")

        def call(self, inputs):
            inputs = lib.ops.cast(inputs, "int32")
            return lib.ops.take(self.embeddings, inputs, axis=0)

        def compute_mask(self, inputs, mask=None):
            if not self.mask_zero:
                return None
            return lib.ops.not_equal(inputs, 0)
    return CustomEmbedding


def masked_encoder(lib):
    class MaskedEncoder(lib.layers.Layer):
        """The guide's layer that passes a mask to a sublayer itself."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = lib.layers.Embedding(input_dim=50, output_dim=4, mask_zero=True)
            self.lstm = lib.layers.LSTM(3)

        def call(self, inputs):
            x = self.embedding(inputs)
            mask = self.embedding.compute_mask(inputs)
            return self.lstm(x, mask=mask)
    return MaskedEncoder


def padded_classifier(lib):
    class PaddedClassifier(lib.Model):
        """A subclassed model: ids, their embedding, a pass-through custom layer, an LSTM that skips the padding."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = lib.layers.Embedding(20, 4, mask_zero=True)
            self.twice = doubler(lib)()
            self.lstm = lib.layers.LSTM(3)
            self.head = lib.layers.Dense(2, activation="softmax")

        def call(self, inputs):
            return self.head(self.lstm(self.twice(self.embedding(inputs))))
    return PaddedClassifier


def logistic_endpoint(lib):
    class LogisticEndpoint(lib.layers.Layer):
        """The guide's endpoint layer, its loss written with ops (binary cross-entropy from logits)."""

        def call(self, targets, logits, sample_weights=None):
            losses = lib.ops.relu(logits) - logits * targets + lib.ops.log(1.0 + lib.ops.exp(-lib.ops.abs(logits)))
            if sample_weights is not None:
                losses = losses * sample_weights
            self.add_loss(lib.ops.mean(losses))
            return lib.ops.softmax(logits)
    return LogisticEndpoint


def endpoint_model(lib):
    """The guide's model around LogisticEndpoint: inputs and targets in, predictions out, no compiled loss."""
    inputs = lib.Input(shape=(3,), name="inputs")
    targets = lib.Input(shape=(10,), name="targets")
    logits = lib.layers.Dense(10)(inputs)
    predictions = logistic_endpoint(lib)(name="predictions")(targets, logits)
    return lib.Model(inputs=[inputs, targets], outputs=predictions)
