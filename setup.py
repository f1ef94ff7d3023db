"""openfields: a trainer for bottom-up pose estimation with composite fields."""

from setuptools import setup

PLUGINS = ['cocodet', 'cocokp', 'crowdpose', 'dlc', 'synthetic']

setup(
    name='openfields',
    version='0.1.0',  # the base of the reported version; see openfields/version.py
    description='Train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet).',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=[
        'openfields',
        'openfields.datasets',
        'openfields.decoder',
        'openfields.encoder',
        'openfields.metric',
        'openfields.network',
        'openfields.network.losses',
        'openfields.show',
        'openfields.training',
        'openfields.transforms',
        'openfields.plugins',
    ] + [f'openfields.plugins.{name}' for name in PLUGINS],
    # the in-repo dataset plugins live in the top-level plugins/ folder
    package_dir={'openfields.plugins': 'plugins'},
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.2',
        'numpy==2.4.6',
        'pycocotools==2.0.11',
        'scipy==1.17.1',
        'matplotlib==3.11.2',
        'pillow==13.0.0',
        'pyyaml==6.0.3',  # DeepLabCut's config.yaml (plugins/dlc)
    ],
    extras_require={
        # experiment loggers (--logger tensorboard / wandb); the tests read their files back
        'tensorboard': ['tensorboard==2.21.0'],
        'wandb': ['wandb==0.31.0'],
        'test': ['pytest==9.2.0', 'tensorboard==2.21.0', 'wandb==0.31.0'],
    },
)
