import io

import pandas as pd
import pytest

from core.cli.main import build_parser, main
from tests.helpers import sine, write_wav


def test_predict_cli_reports_bad_files_and_processes_the_rest(official_run, tmp_path, capsys):
    good = write_wav(tmp_path / "in" / "good one.wav", sine(1.5))
    short = write_wav(tmp_path / "in" / "short.wav", sine(0.2))
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    (tmp_path / "in" / "empty.flac").write_bytes(b"")
    code = main(["--runs-dir", str(official_run.dir.parent), "predict", str(tmp_path / "in")])
    captured = capsys.readouterr()
    assert code == 1
    table = pd.read_csv(io.StringIO(captured.out))
    assert sorted(table["file"]) == sorted([str(good), str(short)])
    assert table[["arousal", "valence", "dominance"]].stack().between(1, 7).all()
    assert "broken.wav" in captured.err and "empty.flac" in captured.err
    assert "predicted 2 of 4 files" in captured.err


def test_predict_cli_chunk_table(official_run, tmp_path, capsys):
    clip = write_wav(tmp_path / "a.wav", sine(3.0))
    assert main(["--runs-dir", str(official_run.dir.parent), "predict", str(clip), "--chunks"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 11 and list(table.columns[:3]) == ["file", "start", "end"]
    assert table["end"].max() <= 3.01


def test_cli_without_runs_says_how_to_start(tmp_path, capsys):
    clip = write_wav(tmp_path / "a.wav", sine(1.0))
    assert main(["--runs-dir", str(tmp_path / "empty"), "predict", str(clip)]) == 2
    assert "import-official" in capsys.readouterr().err
    assert main(["--runs-dir", str(tmp_path / "empty"), "runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out


def test_import_official_cli_requires_all_paths(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "import-official", "--arousal", "x.pth.tar"]) == 2
    assert "give --from FOLDER" in capsys.readouterr().err


def test_train_and_ablation_take_the_split_hygiene_flags():
    from core.cli.main import build_parser
    for command in ("train", "ablation"):
        default = build_parser().parse_args([command, "--corpus", "c.csv"])
        assert not default.allow_speaker_overlap and not default.allow_duplicate_audio
        both = build_parser().parse_args([command, "--corpus", "c.csv", "--allow-speaker-overlap",
                                          "--allow-duplicate-audio"])
        assert both.allow_speaker_overlap and both.allow_duplicate_audio


def test_help_of_every_command_prints(capsys):
    """argparse %-formats help strings: a bare "95 %" in one once made `python -m core --help` crash."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "evaluate" in capsys.readouterr().out
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0, name
        assert capsys.readouterr().out.startswith("usage:"), name


def test_train_printer_says_both_dev_criteria_and_whether_the_epoch_is_kept(capsys):
    """Each epoch's line gives the dev CCC, the released code's chunk loss (`train.keep_epoch`'s other rule) and
    whether the run's rule keeps the epoch so far."""
    from core.cli.progress import TrainPrinter
    from core.training.train import TrainProgress
    printer = TrainPrinter()
    printer(TrainProgress("validate", 2, 10, 1, 1, 90.0, {"arousal": 0.6123}, 0.3871, True))
    printer(TrainProgress("validate", 3, 10, 1, 1, 60.0, {"arousal": 0.5}, 0.41, False))
    lines = capsys.readouterr().err.split("\r")
    assert lines[1].rstrip() == "epoch 3/10: dev CCC arousal 0.612, dev chunk loss 0.387, kept, ETA 1.5 min"
    assert lines[2].rstrip() == "epoch 4/10: dev CCC arousal 0.500, dev chunk loss 0.410, ETA 1.0 min"
