"""Measured peak GFLOP/s of this machine: large matmul and large 3x3 convolution, fp32 and bf16.

The other benchmarks print the same table before their own, so their throughput can be read as a
fraction of what the machine delivered in that run (the CPU is shared; absolute numbers drift).

    .venv/bin/python benchmarks/machine_peak.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse

from _common import add_device_args, machine_peaks, peak_table, setup_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    args = parser.parse_args()
    device = setup_device(args)
    peaks = machine_peaks(device, args.quick)
    print(peak_table(peaks))
    ratio = peaks["bf16"]["peak"] / peaks["fp32"]["peak"]
    print(f"\nbf16 / fp32 peak: {ratio:.2f}x")


if __name__ == "__main__":
    main()
