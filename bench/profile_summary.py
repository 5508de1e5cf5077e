"""Summarise a py-spy raw (collapsed stacks) profile: the functions where the
samples are, inclusive and self, so a report can name what dominates.

    python bench/profile_summary.py bench/out/<run>/s1-20000-stage1.pyspy [--top 30] [--match flows/]
"""

from __future__ import annotations

import argparse
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only frames whose text contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(args.path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            total += samples
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += samples
            own[frames[-1]] += samples
    print(f"{total} samples")
    print("inclusive:")
    for frame, samples in inclusive.most_common():
        if args.match in frame:
            print(f"  {100 * samples / total:5.1f}%  {frame}")
            args.top -= 1
            if args.top <= 0:
                break
    print("self (top 15):")
    for frame, samples in own.most_common(15):
        print(f"  {100 * samples / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
