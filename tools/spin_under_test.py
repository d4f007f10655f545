"""The ``run_node`` a tool's child process tests: ours, or an older ``spin.py`` given by path.

The tools that stop a node again and again (``stop_under_flood.py``,
``signal_during_start_up.py``) start it as ``python -c CHILD PATH``; CHILD begins with
``LOAD_SPIN``, which binds ``spin`` to the module at PATH or, when PATH is empty, to
``sole_r1_ros.nodes.spin``.
"""
import textwrap

LOAD_SPIN = textwrap.dedent('''
    import importlib.util, sys
    if sys.argv[1]:
        spec = importlib.util.spec_from_file_location('spin_under_test', sys.argv[1])
        spin = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(spin)
    else:
        from sole_r1_ros.nodes import spin
''')
