"""`python -m asymmetry measure IMAGE...`: measure photos from the shell, without a project (measuring a
project's stored photos is the workflow's job: `fnp measure`)."""
from __future__ import annotations

import argparse
import json
import sys


def _fmt(v, nd=3):
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def cmd_measure(args) -> int:
    from asymmetry.measure import measure_photo

    out, worst = [], 0
    for path in args.images:
        m = measure_photo(path, args.mirrored, pick_best=args.pick_best)
        d = {"file": path, **m.to_dict()}
        out.append(d)
        if m.status != "ok":
            worst = 1
        if args.overlay and m.landmarks.points is not None:
            from asymmetry.imaging import decode_image
            from asymmetry.overlay import draw_overlay

            dec = decode_image(path)
            target = args.overlay if len(args.images) == 1 else args.overlay.replace(".png", f"-{len(out)}.png")
            draw_overlay(dec.rgb, m.landmarks.points, mirrored=args.mirrored).save(target)
            d["overlay"] = target
        if not args.json:
            print(f"{path}: {m.status}{' — ' + m.message if m.message else ''}")
            if m.indices is not None:
                i = m.indices
                print("  signed   " + "  ".join(f"{k}={_fmt(getattr(i, k + '_signed'))}" for k in
                                               ("eas", "ebas", "nas", "mas", "m_an", "n_an", "eb_an")))
                print(f"  RgAs={_fmt(i.rgas)} (signed {_fmt(i.rgas_signed)})  AnAs={_fmt(i.anas)} (signed {_fmt(i.anas_signed)})"
                      f"  side={i.side or 'none'}  inter-pupil={_fmt(i.ipd_px, 1)} px")
                print(f"  face box={d['face_box']}  faces={m.landmarks.n_faces}  quality={d['quality']}")
            if d.get("overlay"):
                print(f"  overlay written to {d['overlay']}")
    if args.json:
        print(json.dumps(out, indent=2))
    return worst


def build_parser(prog: str = "python -m asymmetry") -> argparse.ArgumentParser:
    """Return the argument parser of `python -m asymmetry` (`prog`: how usage lines name the command)."""
    p = argparse.ArgumentParser(prog=prog, description="Landmark asymmetry of face photos "
                                "(research tool, not a diagnostic device).")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="measure photos and print status, indices, side and face box")
    m.add_argument("images", nargs="+")
    m.add_argument("--mirrored", action="store_true", help="the photos are mirrored (front camera)")
    m.add_argument("--pick-best", action="store_true", help="with several faces, use the highest-scoring one")
    m.add_argument("--json", action="store_true")
    m.add_argument("--overlay", metavar="OUT.png", help="write the landmark overlay (points, pupil line, midline)")
    m.set_defaults(func=cmd_measure)
    return p


def main(argv=None, prog: str = "python -m asymmetry") -> int:
    args = build_parser(prog).parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
