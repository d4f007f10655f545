"""Sub-commands of the ``sole-r1`` command, one module each (``add_arguments`` + ``run``)."""
