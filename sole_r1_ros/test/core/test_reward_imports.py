"""``import sole_r1_ros.reward`` needs only numpy; heavy extras load with their backend."""
import subprocess
import sys
import textwrap

_BLOCK_TEMPLATE = textwrap.dedent('''
    import sys
    BLOCKED = BLOCKED_NAMES

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {name!r}', name=name)

    sys.meta_path.insert(0, Block())
''')
_BLOCK = _BLOCK_TEMPLATE.replace('BLOCKED_NAMES', repr((
    'torch', 'transformers', 'tokenizers', 'cv2', 'PIL', 'requests', 'httpx2', 'matplotlib',
    'tqdm', 'rclpy')))


def _run(code):
    return subprocess.run([sys.executable, '-c', _BLOCK + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)


def test_reward_package_imports_with_only_numpy():
    result = _run('''
        import sole_r1_ros.reward as reward
        from sole_r1_ros.reward import protocol
        assert reward.parse_answer('<answer>5%</answer>').progress == 5
        assert protocol.smart_resize(773, 1162) == (784, 1176)
        assert reward.make_backend(reward.RewardConfig(backend='oracle')).model_id == 'oracle'
        print('ok')
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


def test_missing_model_extra_names_what_to_install():
    result = _run('''
        from sole_r1_ros.reward import make_backend, RewardConfig
        for backend in ('transformers', 'openai'):
            try:
                make_backend(RewardConfig(backend=backend, model='tiny-random'))
            except ImportError as exc:
                print(backend, exc)
    ''')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'sole_r1_ros[model]'" in line for line in lines)


def test_ros_free_packages_import_without_rclpy_and_never_import_nodes_or_commands():
    """Every module of the ROS-free packages imports with ROS blocked.

    torch and OpenCV are allowed; none pulls in nodes, commands or a message package.
    """
    block_ros = _BLOCK_TEMPLATE.replace(
        'BLOCKED_NAMES', repr(('rclpy', 'sensor_msgs', 'sole_r1_interfaces')))
    result = subprocess.run([sys.executable, '-c', block_ros + textwrap.dedent('''
        import importlib, pkgutil, sys
        import sole_r1_ros
        for package in ('reward', 'rl', 'sim', 'camera', 'compact', 'synth', 'evaluation',
                        'recording', 'viz', 'finetune', 'labelled'):
            module = importlib.import_module(f'sole_r1_ros.{package}')
            for info in pkgutil.walk_packages(module.__path__, f'sole_r1_ros.{package}.'):
                importlib.import_module(info.name)   # sub-packages too (reward.backends)
        import sole_r1_ros.image_msgs, sole_r1_ros.configuration
        bad = sorted(m for m in sys.modules
                     if m.startswith(('sole_r1_ros.nodes', 'sole_r1_ros.commands'))
                     or m.split('.')[0] in ('rclpy', 'sensor_msgs', 'sole_r1_interfaces'))
        print('bad', bad)
    ''')], capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'bad []'
