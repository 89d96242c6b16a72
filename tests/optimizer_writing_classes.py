"""Two optimizers written Keras's way (``build`` with ``add_optimizer_variables``/``add_variable_from_reference``/
``add_variable``, ``update_step`` with the ops and ``assign``/``assign_add``/``assign_sub``), the same code for
gpu_dl and for Keras: the tests of the optimizer-writing API and their Keras oracle share them."""
import gpu_dl


def optimizer_classes(lib):
    """The two optimizers, written once against ``lib`` (gpu_dl or keras) and registered in it."""
    ops = lib.ops

    @lib.saving.register_keras_serializable(package="OptimizerWritingOracle")
    class MomentumSGD(lib.optimizers.Optimizer):
        def __init__(self, learning_rate=0.01, momentum=0.9, name="momentum_sgd", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.momentum = momentum

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self.momentums = self.add_optimizer_variables(var_list, "momentum")

        def update_step(self, gradient, variable, learning_rate):
            lr = ops.cast(learning_rate, variable.dtype)
            m = self.momentums[self._get_variable_index(variable)]
            self.assign(m, ops.subtract(ops.multiply(m, ops.cast(self.momentum, variable.dtype)),
                                        ops.multiply(gradient, lr)))
            self.assign_add(variable, m)

        def get_config(self):
            config = super().get_config()
            config.update({"momentum": self.momentum})
            return config

    @lib.saving.register_keras_serializable(package="OptimizerWritingOracle")
    class ScaledRms(lib.optimizers.Optimizer):
        def __init__(self, learning_rate=0.001, rho=0.8, name="scaled_rms", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.rho = rho

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self.squares = []
            for var in var_list:
                self.squares.append(self.add_variable_from_reference(var, "square", initializer="ones"))
            self.steps_seen = self.add_variable((), initializer="zeros", dtype="float32", name="steps_seen")

        def update_step(self, gradient, variable, learning_rate):
            dtype = variable.dtype
            s = self.squares[self._get_variable_index(variable)]
            rho = ops.cast(self.rho, dtype)
            t = ops.cast(self.iterations + 1, dtype)
            self.assign(s, ops.add(ops.multiply(s, rho), ops.multiply(ops.square(gradient), 1 - rho)))
            s_hat = ops.divide(s, ops.subtract(1, ops.power(rho, t)))
            step = ops.divide(ops.multiply(ops.cast(learning_rate, dtype), gradient), ops.add(ops.sqrt(s_hat), 1e-4))
            self.assign_sub(variable, step)
            self.assign_add(self.steps_seen, 1.0)

        def get_config(self):
            config = super().get_config()
            config.update({"rho": self.rho})
            return config

    return {"MomentumSGD": MomentumSGD, "ScaledRms": ScaledRms}


# gpu_dl's, made (and registered) once per process
OURS = optimizer_classes(gpu_dl)
