"""metrics.csv: one row per iteration, integer columns written as integers (also after a resume rewrites
the file), and a row a killed process left half-written never read as a row."""

import robopg
from robopg.metrics import INTEGER_COLUMNS, read_csv

from .conftest import tiny
from .test_training import interrupt_at


def test_integer_columns_stay_integers_through_a_resume(tmp_path):
    import pytest

    from robopg.trainer import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny(checkpoint_every=2), tmp_path / "r", callbacks=[interrupt_at(3)])
    robopg.resume(tmp_path / "r")  # rewrites the rows kept from before the interruption
    lines = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        for column in INTEGER_COLUMNS & set(header):
            assert row[column] == "" or row[column].lstrip("-").isdigit(), (column, row[column])


def test_a_half_written_last_row_is_not_a_row(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("iteration,env_steps,return_mean\n1,512,3.5\n2,1024,4.0\n1")  # row 12, cut after "1"
    assert [r["iteration"] for r in read_csv(path)] == [1.0, 2.0]
