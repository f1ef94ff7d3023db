"""openfields: a trainer for bottom-up pose estimation with composite fields."""

from setuptools import find_packages, setup

# torch's ONNX exporter (dynamo) needs onnxscript; onnxruntime runs and verifies the exported models
EXPORT = ['onnx==1.23.2', 'onnxscript==0.7.2', 'onnx-ir==1.1.0', 'onnxruntime==1.31.1', 'protobuf==7.36.2',
          'ml-dtypes==0.6.0', 'flatbuffers==25.12.19']
# PyAV 18.1 is the newest with wheels for Python 3.11 (19 needs 3.12; abi3 wheels serve later versions too)
VIDEO = ['av==18.1.0']
# DeepLabCut's .h5 prediction tables (predict/video --dlc-table x.h5); .csv needs nothing
DLC_H5 = ['pandas==3.1.1', 'tables==3.11.1']
# the HRNet basenets are timm's HRNet (the library DeepLabCut builds them with, so its ImageNet weights load);
# huggingface_hub downloads the ImageNet weights of resnet50_gn, the HRNets and the CSPNeXts, safetensors reads them
TIMM = ['timm==1.0.31', 'huggingface_hub==2.4.0', 'safetensors==0.8.0']

setup(
    name='openfields',
    version='0.1.0',  # the base of the reported version; see openfields/version.py
    description='Train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet).',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    # every package under openfields/, and the in-repo dataset plugins of the top-level plugins/ folder as
    # openfields.plugins (a package left out here would be missing from a non-editable install)
    packages=find_packages(include=['openfields', 'openfields.*']) + ['openfields.plugins'] + [
        f'openfields.plugins.{name}' for name in find_packages('plugins')],
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
        'numba==0.68.1',  # the decoder's compiled loops (openfields/decoder/kernels.py)
    ],
    extras_require={
        # experiment loggers (--logger tensorboard / wandb); the tests read their files back
        'tensorboard': ['tensorboard==2.21.0'],
        'wandb': ['wandb==0.31.0'],
        # python -m openfields.export_onnx, and predict/video with .onnx models
        'export': EXPORT,
        # python -m openfields.video on video files (a folder of frames needs nothing more)
        'video': VIDEO,
        'dlc-h5': DLC_H5,
        # --basenet hrnet_w18/32/48, and ImageNet weights of the basenets DeepLabCut takes from the hub
        'timm': TIMM,
        'test': ['pytest==9.2.0', 'tensorboard==2.21.0', 'wandb==0.31.0'] + EXPORT + VIDEO + DLC_H5 + TIMM,
    },
)
