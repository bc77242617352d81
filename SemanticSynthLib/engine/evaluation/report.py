"""The evaluation report: report.json, report.md, slice grids and a Dice bar chart as PNGs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PAPERS = ("Reference points from the seed papers (their data, not ours): abdominal-CT semantic synthesis "
          "PSNR 16.3 dB, SSIM 0.646, FID 10.6 (Inception features); segmentation-guided diffusion Dice_gen/Dice_orig "
          "0.923/0.925 (CT); Med-LSDM 0.710/0.715.")


def _sampling(summary: dict) -> str:
    scale, temperature = summary.get("guidance", 1.0), summary.get("temperature", 1.0)
    return ((f", classifier-free guidance {scale:g}" if scale != 1.0 else "")
            + (f", sampling temperature {temperature:g}" if temperature != 1.0 else ""))


def _fmt(value, digits=3):
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def markdown(summary: dict, results: list[dict], names: list[str], pictures: list[str]) -> str:
    g, p = summary["generated"], summary["painting"]
    r = summary.get("reconstruction", {k: float("nan") for k in ("psnr", "ssim", "ms_ssim", "dice_mean", "dice_ratio",
                                                                   "intensity_relative_error_mean")})
    rfid = summary["fid"].get("reconstruction", {})
    lines = [f"# Evaluation of `{summary['generator']}`", "",
             f"{summary['cases']} cases of `{summary['data']}`, {summary['samples_per_case']} sample(s) per case, "
             f"{summary['steps']} DDIM steps{_sampling(summary)}"
             f"{'' if summary.get('calibrated', True) else ', uncalibrated (--no-calibrate)'}, {summary['seconds'] / 60:.1f} min. Auxiliary segmenter: `{summary['segmenter']}`. "
             f"FID features: {summary['fid_features']}; {summary['fid_slices_per_set']} slices per set (axial, coronal, sagittal).",
             "", "## Summary", "",
             "| | Generated | Label-mean painting | Autoencoder reconstruction (ceiling) |", "|---|---|---|---|",
             f"| PSNR (dB), labelled region | {g['psnr']:.2f} | {p['psnr']:.2f} | {_fmt(r['psnr'], 2)} |",
             f"| SSIM | {g['ssim']:.3f} | {p['ssim']:.3f} | {_fmt(r['ssim'])} |",
             f"| MS-SSIM | {g['ms_ssim']:.3f} | {p['ms_ssim']:.3f} | {_fmt(r['ms_ssim'])} |",
             f"| Mean Dice (segmenter on the image) | {g['dice_mean']:.3f} | {p['dice_mean']:.3f} | {_fmt(r['dice_mean'])} |",
             f"| Dice / Dice_orig ({summary['dice_orig_mean']:.3f} on real images) | {g['dice_ratio']:.3f} | {p['dice_ratio']:.3f} | {_fmt(r['dice_ratio'])} |",
             f"| FID, all planes | {summary['fid']['generated']['all planes']:.2f} | {summary['fid']['painting']['all planes']:.2f} | {_fmt(rfid.get('all planes'), 2)} |",
             *[f"| FID, {plane} | {summary['fid']['generated'][plane]:.2f} | {summary['fid']['painting'][plane]:.2f} | {_fmt(rfid.get(plane), 2)} |"
               for plane in ("axial", "coronal", "sagittal")],
             f"| FID floor: real vs real (first vs second half of the cases) | {_fmt(summary['fid'].get('real vs real (halves)'), 2)} | | |",
             f"| Mean intensity error per structure | {100 * g['intensity_relative_error_mean']:.1f}% | {100 * p['intensity_relative_error_mean']:.1f}% | {_fmt(100 * r['intensity_relative_error_mean'], 1)}% |",
             "", PAPERS, "", "## Per structure", "",
             "| Structure | Dice_orig | Dice_gen | Dice painting | Dice reconstruction | Intensity error gen. | Intensity error painting |",
             "|---|---|---|---|---|---|---|"]
    for i, name in enumerate(names):
        lines.append(f"| {name} | {_fmt(summary['dice_orig'][i])} | {_fmt(g['dice'][i])} | {_fmt(p['dice'][i])} | "
                     f"{_fmt(r['dice'][i] if 'dice' in r else None)} | {_fmt(100 * g['intensity_relative_error'][i], 1)}% | {_fmt(100 * p['intensity_relative_error'][i], 1)}% |")
    lines += ["", "![Dice per structure](dice.png)", "", "## Per case", "",
              "| Case | PSNR | SSIM | MS-SSIM | Dice_orig | Dice_gen | PSNR painting |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['generated']['psnr']:.2f} | {r['generated']['ssim']:.3f} | {r['generated']['ms_ssim']:.3f} | "
                     f"{np.nanmean(r['dice_orig']):.3f} | {np.nanmean(r['generated']['dice']):.3f} | {r['painting']['psnr']:.2f} |")
    lines += _realism_and_privacy(summary)
    lines += ["", "## Pictures", ""] + [f"![{case}]({case}.png)" for case in pictures] + [""]
    return "\n".join(lines)


def dice_chart(summary: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    for k, (label, values) in enumerate((("real (Dice_orig)", summary["dice_orig"]), ("generated (Dice_gen)", summary["generated"]["dice"]),
                                         ("label-mean painting", summary["painting"]["dice"]))):
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice of the auxiliary segmenter")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def slice_grid(case: str, pictures: dict, path: Path) -> None:
    """Rows: axial, coronal, sagittal through the labels' centre (arrays in LPS order, radiological display).
    Columns: labels, real, generated, difference, with the structure outlines drawn on the images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = pictures["labels"]
    centre = [int(np.mean(i)) for i in np.nonzero(labels)]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(3, 4, figsize=(13, 10), facecolor="black")
    for row, axis in enumerate((2, 1, 0)):
        def cut(v, axis=axis):
            plane = np.take(v, centre[axis], axis=axis).T
            return plane if axis == 2 else plane[::-1]  # superior up in coronal and sagittal views
        lab = cut(labels)
        panels = [("labels", np.ma.masked_equal(lab, 0), dict(cmap="tab10", vmin=1, vmax=10, interpolation="nearest")),
                  ("real", cut(pictures["real"]), dict(cmap="gray", vmin=0, vmax=0.8)),
                  ("generated", cut(pictures["generated"]), dict(cmap="gray", vmin=0, vmax=0.8)),
                  ("generated - real", cut(pictures["generated"] - pictures["real"]), dict(cmap="coolwarm", vmin=-0.3, vmax=0.3))]
        for col, (title, image, style) in enumerate(panels):
            ax = axes[row, col]
            ax.set_facecolor("black")
            ax.imshow(image, **style)
            if col in (1, 2):
                for g in range(1, int(labels.max()) + 1):
                    if (lab == g).any():
                        ax.contour(lab == g, levels=[0.5], colors=[colours((g - 1) % 10)], linewidths=0.6)
            ax.set_title(f"{title}, {('axial', 'coronal', 'sagittal')[row]}", color="white", fontsize=9)
            ax.axis("off")
    fig.suptitle(case, color="white")
    fig.tight_layout()
    fig.savefig(path, dpi=70, facecolor="black")
    plt.close(fig)


def _realism_and_privacy(summary: dict) -> list[str]:
    """The FRD and memorisation sections, where evaluate ran them, and what it skipped."""
    lines = []
    frd = summary.get("frd")
    if frd:
        lines += ["", "## Fréchet Radiomics Distance (independent realism)", "",
                  f"{frd['definition']}; {frd['cases_per_half']} cases per half. Lower is better; the floor is what two "
                  "real halves give.", "", "| region | real vs real (floor) | generated | reconstruction (ceiling) | "
                  "label-mean painting |", "|---|---|---|---|---|"]
        lines += [f"| {region} | {v['floor']:.2f} | {v['generated']:.2f} | {v['reconstruction']:.2f} | {v['painting']:.2f} |"
                  for region, v in frd["regions"].items()]
    m = summary.get("memorisation")
    if m:
        lines += ["", "## Memorisation check (privacy)", "",
                  f"Generated against the real scan of the same label map, inside the labels: {m['cases']['training']} "
                  f"training subjects, {m['cases']['held_out']} held-out (the evaluated cases). A model that memorised "
                  "its training scans scores clearly higher on the training subjects.", "",
                  "| | training subjects | held-out subjects | gap |", "|---|---|---|---|",
                  f"| SSIM | {m['training']['ssim']:.3f} | {m['held_out']['ssim']:.3f} | {m['ssim_gap']:+.3f} |",
                  f"| NCC | {m['training']['ncc']:.3f} | {m['held_out']['ncc']:.3f} | {m['ncc_gap']:+.3f} |", "",
                  f"Nearest training scan of each held-out generated volume (NCC inside its labels): "
                  f"{m['closer_to_a_training_scan']} of {len(m['nearest'])} are closer to a training scan than to "
                  "their own subject's real scan.", "", "| held-out case | own real scan | nearest training scan | NCC |",
                  "|---|---|---|---|"]
        lines += [f"| {n['case']} | {n['own_scan_ncc']:.3f} | {n['nearest_training_scan']} | {n['nearest_training_ncc']:.3f} |"
                  for n in m["nearest"]]
    if summary.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- {note}" for note in summary["skipped"]]
    return lines


def write_report(out: Path, summary: dict, results: list[dict], pictures: list, names: list[str]) -> None:
    (out / "report.json").write_text(json.dumps({"summary": summary, "cases": results}, indent=1, allow_nan=True),
                                     encoding="utf-8")
    dice_chart(summary, names, out / "dice.png")
    for case, images in pictures:
        slice_grid(case, images, out / f"{case}.png")
    (out / "report.md").write_text(markdown(summary, results, names, [case for case, _ in pictures]),
                                   encoding="utf-8")  # names and headings are not all ASCII, whatever the locale
