"""Record and monitor training run by a framework's own trainer, through its callbacks.

* :mod:`nbdebug.integrations.lightning`: ``RecordCallback`` and ``MonitorCallback`` for the
  Lightning ``Trainer`` (``pip install 'nbdebug[lightning]'``);
* :mod:`nbdebug.integrations.huggingface`: the same two as ``transformers.TrainerCallback``s
  for the Hugging Face ``Trainer`` (``pip install 'nbdebug[huggingface]'``).

Neither framework is a dependency of nbdebug: each module imports its framework when it is
imported itself, and says which extra to install if it is missing. This package imports
neither.
"""
