#!/usr/bin/env bash
# The runner's CUDA path and its GPU benchmark, in one go, on a machine with a GPU:
#     bash tests/bench/gpu_check.sh [OUT_DIR]
# Runs the `gpu` tests (every workload in fp32/bf16/fp16, torch.compile, resume, divergence, a
# study from the command line) and times the runner against a bare loop (target overhead <= 3%).
# Logs go to OUT_DIR (default: ./gpu_check_out). Needs torch with CUDA, numpy, scipy,
# scikit-learn and pytest; the project itself need not be installed (run from the repo root).
set -u -o pipefail
out="${1:-gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# tests/conftest.py hides GPUs from the ordinary tests unless this is set
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}" TUNETOP_REQUIRE_GPU=1
py="${PYTHON:-python3}"
{
    nvidia-smi -L
    "$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
        "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} 2>&1 | tee "$out/device.txt"
timeout 330 "$py" -m pytest -q -o addopts="" -p no:cacheprovider -m gpu \
    tests/runner/test_cuda.py -rs 2>&1 | tee "$out/gpu_tests.log"
tests_rc=$?
for args in "--workload tiny_transformer --precision fp32" \
            "--workload tiny_transformer --precision bf16" \
            "--workload tiny_transformer --precision bf16 --batch-size 512" \
            "--workload tiny_resnet --precision bf16 --optimizer momentum --lr 0.05"; do
    # shellcheck disable=SC2086
    timeout 90 "$py" tests/bench/bench_runner.py --device cuda $args --repeats 3 2>&1 \
        | tee -a "$out/bench_runner.txt"
done
echo "gpu tests exit code: $tests_rc"
exit "$tests_rc"
