"""UAV123 / UAV20L reader (EVALUATION.md 2.5, Appendix B).

Layout: ``<root>/data_seq/UAV123/<folder>/000001.jpg`` and ``<root>/anno/<subset>/<seq>.txt`` (``x,y,w,h``,
kept as read; ``NaN,NaN,NaN,NaN`` rows where the target is not visible, which we mark ``absent``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from siamrn_jax.eval.benchmarks import nan_absent, numbered_frames, read_table, select
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.io.sources import InputError

# Appendix B: sequences cut from a longer image folder, name -> (folder, first, last) file numbers.
_RANGES = """
bird1_1=bird1[1..253]; bird1_2=bird1[775..1477]; bird1_3=bird1[1573..2437]; car1_1=car1[1..751];
car1_2=car1[751..1627]; car1_3=car1[1627..2629]; car6_1=car6[1..487]; car6_2=car6[487..1807];
car6_3=car6[1807..2953]; car6_4=car6[2953..3925]; car6_5=car6[3925..4861]; car8_1=car8[1..1357];
car8_2=car8[1357..2575]; car16_1=car16[1..415]; car16_2=car16[415..1993]; group1_1=group1[1..1333];
group1_2=group1[1333..2515]; group1_3=group1[2515..3925]; group1_4=group1[3925..4873];
group2_1=group2[1..907]; group2_2=group2[907..1771]; group2_3=group2[1771..2683];
group3_1=group3[1..1567]; group3_2=group3[1567..2827]; group3_3=group3[2827..4369];
group3_4=group3[4369..5527]; person2_1=person2[1..1189]; person2_2=person2[1189..2623];
person4_1=person4[1..1501]; person4_2=person4[1501..2743]; person5_1=person5[1..877];
person5_2=person5[877..2101]; person7_1=person7[1..1249]; person7_2=person7[1249..2065];
person8_1=person8[1..1075]; person8_2=person8[1075..1525]; person12_1=person12[1..601];
person12_2=person12[601..1621]; person14_1=person14[1..847]; person14_2=person14[847..1813];
person14_3=person14[1813..2923]; person17_1=person17[1..1501]; person17_2=person17[1501..2347];
person19_1=person19[1..1243]; person19_2=person19[1243..2791]; person19_3=person19[2791..4357];
truck4_1=truck4[1..577]; truck4_2=truck4[577..1261]; uav1_1=uav1[1..1555]; uav1_2=uav1[1555..2377];
uav1_3=uav1[2473..3469]
"""


def _parse_ranges(text: str) -> dict[str, tuple[str, int, int]]:
    out = {}
    for entry in text.split(";"):
        name, spec = entry.strip().split("=")
        folder, span = spec.rstrip("]").split("[")
        first, last = span.split("..")
        out[name] = (folder, int(first), int(last))
    return out


SUB_SEQUENCES = _parse_ranges(_RANGES)


def load(root: str | Path, sequences: Iterable[str] | None = None, subset: str = "UAV123") -> list[Sequence]:
    """UAV123 (or UAV20L) sequences.

    Args:
      root: dataset root holding ``data_seq/UAV123`` and ``anno/<subset>``.
      sequences: names to load (``bird1_2``); None loads every annotation file.
      subset: "UAV123" (sub-sequence ranges of Appendix B) or "UAV20L" (whole folders from frame 1).

    Returns:
      Sequences in name order: [T, 4] ground truth with NaN rows kept, ``absent`` where a row is NaN.
    """
    root = Path(root)
    anno_dir = root / "anno" / subset
    if not anno_dir.is_dir():
        raise InputError(f"{anno_dir}: no such annotation folder")
    found = {p.stem: p for p in anno_dir.glob("*.txt")}
    ranges = SUB_SEQUENCES if subset == "UAV123" else {}
    out = []
    for name, gt_path in select(found, sequences, root):
        gt = read_table(gt_path)
        folder, first, last = ranges.get(name, (name, 1, None))
        if last is not None and last - first + 1 != len(gt):
            raise InputError(f"{gt_path}: {len(gt)} lines for the official range {folder}[{first}..{last}]")
        # Sub-sequences share their folder, so only a whole-folder sequence must match its image count.
        frames = numbered_frames(root / "data_seq" / "UAV123" / folder, first, len(gt), exact=False)
        out.append(Sequence(name, frames, gt, absent=nan_absent(gt)))
    return out
