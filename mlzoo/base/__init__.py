"""What a concept inherits: the module base classes, the supervised step, TensorBoard helpers and
the error type. Imports nothing from mlzoo.run."""
