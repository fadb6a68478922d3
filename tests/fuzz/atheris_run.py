"""Coverage-guided fuzzing of the same properties with atheris (libFuzzer), beyond hypothesis' random
mutations: ``pip install -e ".[fuzz]"`` then

    python -m tests.fuzz.atheris_run TARGET [libFuzzer flags, e.g. -max_total_time=300 -timeout=20]

TARGET is one of ``TARGETS`` (``python -m tests.fuzz.atheris_run --list``). Each input is the whole file
the target's reader reads (``Mutation("replace", data)``); a property violation (another exception, a
message not naming the file) is a crash libFuzzer reports with the input that caused it (``crash-*`` in
the working directory, replayed with ``python -m tests.fuzz.atheris_run TARGET crash-...``). libFuzzer's
``-timeout`` guards hangs here, in place of the suite's SIGALRM limit. In 40 s on the text target it found
the label past int64 that hypothesis had not (``test_regressions.test_label_file_with_a_number_past_int64``).
"""

from __future__ import annotations

import os
import sys

os.environ["SIAMRN_FUZZ_NO_ALARM"] = "1"  # before fuzzing's import: libFuzzer owns SIGALRM

# module: the check functions (a Mutation each) it offers, as ``module.check_<target>``.
TARGETS = {
    "groundtruth": "test_text_files",
    "vot_result_text": "test_text_files",
    "report_results": "test_text_files",
    "uav": "test_text_files",
    "otb": "test_text_files",
    "box_lines": "test_data_files",
    "flag_lines": "test_data_files",
    "preset_file": "test_json_files",
    "pysot_json": "test_json_files",
    "benchmark_meta_json": "test_json_files",
    "include_rows": "test_json_files",
    "onnx_export_json": "test_json_files",
    "provenance": "test_json_files",
    "pth": "test_binary_files",
    "track_index": "test_binary_files",
    "video": "test_binary_files",
    "init_box": "test_config",
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m tests.fuzz.atheris_run {{{','.join(sorted(TARGETS))}}} [libFuzzer flags]")
        sys.exit(0 if "--list" in argv else 2)
    import atheris  # the [fuzz] extra

    target = argv[1]
    with atheris.instrument_imports(include=["siamrn_jax"]):
        import importlib

        module = importlib.import_module(f"tests.fuzz.{TARGETS[target]}")
    from tests.fuzz.fuzzing import Mutation

    check = getattr(module, f"check_{target}")

    def one(data: bytes) -> None:
        if target == "init_box":
            check(data.decode("utf-8", "replace"))
        elif target == "pth":
            check("zip", Mutation("replace", data=data))
        else:
            check(Mutation("replace", data=data))

    atheris.Setup([argv[0], *argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
