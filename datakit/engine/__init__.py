"""The task-agnostic training engine: the run directory, the device, the epoch loop.

Nothing here knows what a class, a box or a mask is: a task (``datakit.tasks``) supplies the
data, the model, the loss and the metrics; the engine runs epochs, keeps checkpoints and writes
the run directory. Submodules are imported directly (``datakit.engine.rundir`` has no torch).
"""
