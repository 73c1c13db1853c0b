"""`make demo` runs the main job end to end against an embedded server."""

from s3po import demo


def test_demo_runs_end_to_end(capsys):
    demo.main()
    out = capsys.readouterr().out
    assert "uploaded gzip" in out
    assert "downloaded and verified all three" in out
    assert "bulk: 500 objects" in out
    assert out.rstrip().endswith("done")
