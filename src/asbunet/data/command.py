"""The command line of this room, each subparser beside its command: `asbunet check-data`, `asbunet teacher-labels`."""

from __future__ import annotations

import sys


def cmd_check_data(args) -> None:
    from tqdm import tqdm

    from asbunet.data.check import check_datasets, format_report

    reports = check_datasets(args.paths, progress=lambda it, name: tqdm(it, desc=name, leave=False))
    print(format_report(reports))
    usable = sum(r.usable for r in reports)
    problems = sum(len(r.problems) for r in reports)
    unopened = any(not r.layout for r in reports)  # training cannot skip a whole dataset
    if problems and (unopened or not (args.skip_bad and usable)):
        hint = "" if args.skip_bad else " (--skip-bad accepts them, as data.skip_bad=true does in training)"
        print(f"asbunet check-data: {problems} problem(s){hint}", file=sys.stderr)
        raise SystemExit(1)


def add_check_data_parser(sub) -> None:
    """The `check-data` subcommand's arguments."""
    p = sub.add_parser("check-data", help="validate datasets before training: readable images, matching masks")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a folder with images/ and masks/, or a COCO .json file")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="report problems but exit 0 while usable samples remain (as data.skip_bad=true trains)",
    )
    p.set_defaults(func=cmd_check_data)


def cmd_teacher_labels(args) -> None:
    from collections import Counter
    from fnmatch import fnmatch
    from pathlib import Path

    from tqdm import tqdm

    from asbunet.data.io import list_images
    from asbunet.data.teachers import Teachers, fetch_teachers, label_folder

    if args.fetch:
        fetch_teachers(args.teachers)
    excluded = set()
    for list_file in args.exclude:
        lines = (line.split("#", 1)[0].strip() for line in Path(list_file).read_text().splitlines())
        excluded |= {line for line in lines if line}
    images = [
        p for p in list_images(Path(args.images)) if not any(fnmatch(p.name, e) or fnmatch(p.stem, e) for e in excluded)
    ]
    rows = label_folder(images, args.output, Teachers(args.teachers), progress=lambda it: tqdm(it, desc="labelling"))
    counts = Counter(r["outcome"] for r in rows)
    print(f"{len(rows)} frames ({len(excluded)} names excluded): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    print(f"wrote {args.output}/masks, kept.txt and labels.csv")


def add_teacher_labels_parser(sub) -> None:
    """The `teacher-labels` subcommand's arguments."""
    p = sub.add_parser("teacher-labels", help="person labels for unlabelled frames from MediaPipe selfie and pose")
    p.add_argument("images", help="folder of frames to label")
    p.add_argument("--output", required=True, help="folder for masks/, kept.txt and labels.csv")
    p.add_argument(
        "--exclude", nargs="*", default=[], help="list files of frames to leave out (one name or glob per line)"
    )
    p.add_argument("--teachers", default=".cache/teachers", help="folder with the MediaPipe .tflite files")
    p.add_argument("--fetch", action="store_true", help="pip download mediapipe==0.10.21 and extract the teachers")
    p.set_defaults(func=cmd_teacher_labels)
