# Two commands on a fresh machine: `make demo` and `make test`. Each target creates or reuses .venv.
PYTHON3 ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.openfields-installed
DEMO_DIR := outputs/demo
PYTEST_FLAGS ?=

.PHONY: venv demo test test-slow test-wheel test-slurm bench bench-topdown bench-dlc gpu-check docs clean

$(STAMP): setup.py
	test -x $(PYTHON) || $(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# create or refresh .venv with openfields (editable) and the test extra
venv:
	rm -f $(STAMP)
	$(MAKE) $(STAMP)

# the demo's synthetic set: 129x129 images of 1-2 upright people, no crowds or occluders (an easy set, so a
# few CPU minutes of training show poses); the same flags select the same cached validation set in eval.
# resnet18 (from scratch) takes 0.71 s per step of 8 images on this 2-core CPU (93% of its FLOP ceiling; 2026-12-07,
# the code of 2026-11-21 runs at the same speed here): 24 epochs reach AP 0.58 with seed 1 (0.57 / 0.58 / 0.56 with
# seeds 1 / 2 / 3 on 2026-11-21; tests/test_demo.py checks AP >= 0.5)
DEMO_DATA := --dataset synthetic --synthetic-image-size 129 --synthetic-people 1 2 --synthetic-heights 0.5 0.9 \
	--synthetic-max-rotation 15 --synthetic-crowd-probability 0 --synthetic-occlusion-probability 0 \
	--synthetic-train-images 256 --synthetic-val-images 32

demo: $(STAMP)
	@echo "== openfields demo: training resnet18 on the embedded synthetic dataset (2 quiet CPU cores: about 12 minutes)"
	rm -rf $(DEMO_DIR)
	$(PYTHON) -m openfields.train $(DEMO_DATA) --basenet resnet18 --no-basenet-pretrained \
		--synthetic-square-edge 129 --synthetic-upsample 2 --synthetic-no-augmentation \
		--epochs 24 --batch-size 8 --optimizer adam --lr 0.002 --b-scale 5.0 \
		--ema 0.1 --batchnorm-momentum 0.1 --bn-recalibration-batches 8 --lr-warm-up-epochs 0.5 \
		--display-interval 8 --loader-workers 1 --seed 1 --max-snapshots 2 \
		--output $(DEMO_DIR)/demo.pkl
	@echo "== openfields demo: evaluating on the synthetic validation set (COCO AP with pycocotools)"
	$(PYTHON) -m openfields.eval --checkpoint $(DEMO_DIR)/demo.pkl $(DEMO_DATA) --coco-eval-long-edge 129 \
		--loader-workers 1 --output $(DEMO_DIR)/demo.eval-synthetic
	@echo "== openfields demo: predicting three validation images, with debug plots of two fields"
	$(PYTHON) -m openfields.predict $$($(PYTHON) -m tools.demo_summary $(DEMO_DIR)/demo.pkl --val-images 3) \
		--checkpoint $(DEMO_DIR)/demo.pkl --long-edge 129 \
		--json-output $(DEMO_DIR)/predictions --image-output $(DEMO_DIR)/predictions \
		--debug-indices cif:5 caf:5 --save-all $(DEMO_DIR)/debug
	@echo "== openfields demo: loss curves"
	$(PYTHON) -m openfields.logs $(DEMO_DIR)/demo.pkl.log --output $(DEMO_DIR)/logs
	@echo
	@echo "== openfields demo: what was written"
	$(PYTHON) -m tools.demo_summary $(DEMO_DIR)/demo.pkl --stats $(DEMO_DIR)/demo.eval-synthetic.stats.json
	@echo "  predictions        $(DEMO_DIR)/predictions/ (drawn images and json)"
	@echo "  debug plots        $(DEMO_DIR)/debug/ (input, CIF field 5 and CAF field 5 of each image)"
	@echo "  loss curves        $(DEMO_DIR)/logs/ (python -m openfields.logs)"

test: $(STAMP)
	$(PYTHON) -m pytest -m "not slow and not slurm and not wheel" $(PYTEST_FLAGS) tests

test-slow: $(STAMP)
	$(PYTHON) -m pytest -m "slow and not slurm" $(PYTEST_FLAGS) tests

# the wheel of `pip install .`, installed (not editable) into a fresh venv that reuses .venv's dependencies: a tiny
# train, eval, predict and video from a folder outside the repository (about a minute on 2 CPU cores)
test-wheel: $(STAMP)
	$(PYTHON) -m pytest -m wheel $(PYTEST_FLAGS) tests/test_packaging.py

# a one-node Slurm cluster on loopback: sbatch slurm/train.sh (2 tasks), then slurm/eval.sh; as root it
# installs Debian's slurmctld, slurmd, slurm-client and munge when missing, otherwise it is skipped
test-slurm: $(STAMP)
	$(PYTHON) -m pytest -m slurm $(PYTEST_FLAGS) tests/test_slurm.py

# the train step of shufflenetv2k16 (batch 8, 385x385) plain, with torch's kernels instead of openfields'
# compiled ones, channels_last and compiled (the compile variant spends about two minutes compiling on a 2-core
# CPU), each with its share of the FLOP ceiling (measured matmul peak)
# dense connections on the shared COCO sample: oracle AP and decoder time with and without, the dense head's cost
# in the network (tools/benchmark_dense.py)
# video analysis frames/s on a 640x480 single-animal and a multi-person video, per network, torch and ONNX
# (tools/benchmark_video.py)
# with OPENPIFPAF_PYTHON=<the python of a venv with OpenPifPaf 0.13.11> (shared/reference/peer-openpifpaf.md) the
# train step also runs beside OpenPifPaf's (same malloc tuning) and the decoder figures include OpenPifPaf's C++
# decoder on the same fields; with DEEPLABCUT_PYTHON=<the python of a venv with DeepLabCut 3.0.2> (make bench-dlc
# makes one in outputs/bench/dlc-venv) the video figures include DeepLabCut's analyze_videos, same network, against
# openfields in float32 and in bfloat16 (--precision)
bench: $(STAMP)
	$(PYTHON) -m tools.benchmark --output outputs/bench/train.json \
		$(if $(OPENPIFPAF_PYTHON),--peer-python $(OPENPIFPAF_PYTHON))
	$(PYTHON) -m tools.benchmark_decode --output outputs/bench/decode.json \
		$(if $(OPENPIFPAF_PYTHON),--peer-python $(OPENPIFPAF_PYTHON))
	$(PYTHON) -m tools.benchmark_threads --output outputs/bench/threads.json
	$(PYTHON) -m tools.benchmark_dense --output outputs/bench/dense.json
	$(PYTHON) -m tools.benchmark_video --output outputs/bench/video.json \
		$(if $(DEEPLABCUT_PYTHON),--dlc-python $(DEEPLABCUT_PYTHON))

# bottom-up against top-down, trained from scratch on the synthetic set and the shared DeepLabCut project (about an
# hour on 2 CPU cores; docs/benchmarks.md, docs/topdown.md); then the DeepLabCut top-down model on a video with the
# detector on every n-th frame, in float32 and bfloat16 (video --detect-every, --precision; the fastest setting with
# its test-frame pixel error; tools/benchmark_box_tracking.py, about 5 minutes)
bench-topdown: $(STAMP)
	$(PYTHON) -m tools.benchmark_topdown --output outputs/bench/topdown.json
	$(PYTHON) -m tools.benchmark_box_tracking --checkpoint outputs/bench/topdown/dlc-td.pkl \
		--output outputs/bench/box_tracking.json

# openfields against DeepLabCut 3.0.2 on DeepLabCut's project (../shared/data/dlc-openfield), same split, backbone and
# random start, bottom-up and top-down, each side stopped after the same wall time (12 + 10 minutes each, about an hour
# in all on 2 CPU cores; tools/benchmark_dlc.py). DeepLabCut runs from a throwaway venv (DLC_VENV, made
# here when missing, as shared/reference/peer-deeplabcut.md says: torch comes from .venv through a .pth file)
DLC_VENV ?= outputs/bench/dlc-venv
bench-dlc: $(STAMP)
	test -x $(DLC_VENV)/bin/python || { $(PYTHON3) -m venv $(DLC_VENV) && \
		$(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
			> $$($(DLC_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/openfields-torch.pth && \
		$(DLC_VENV)/bin/pip install --quiet --disable-pip-version-check deeplabcut==3.0.2; }
	$(PYTHON) -m tools.benchmark_dlc --dlc-python $(DLC_VENV)/bin/python --output outputs/bench/dlc.json

# on a GPU machine, at most 8 minutes: the CUDA tests, a 2-process --ddp run (NCCL on two GPUs, else gloo on one),
# the CUDA training and decoder benchmarks into outputs/bench/ (docs/hpc.md); without a GPU it skips them and says so
gpu-check: $(STAMP)
	timeout 500 $(PYTHON) -m tools.gpu_check --output-dir outputs/bench --budget 480

# regenerate the CLI and configuration references from the parsers
docs: $(STAMP)
	$(PYTHON) -m tools.cli_reference > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md
	$(PYTHON) -m tools.config_reference > docs/configuration.md.tmp && mv docs/configuration.md.tmp docs/configuration.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache all-images
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find outputs -mindepth 1 ! -name .gitignore ! -name README.md -exec rm -rf {} +
