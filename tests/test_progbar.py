"""The progress bar: redraws in place on a terminal, one final line elsewhere."""
import io

from gpu_dl.utils.progbar import Progbar, format_value


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_redraws_in_place_and_ends_with_newline():
    stream = Terminal()
    bar = Progbar(4, interval=0.0, stream=stream)
    for step in range(1, 5):
        bar.update(step, {"loss": 1.0 / step})
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "ETA:" in text and "4/4" in text and "loss: 0.2500" in text


def test_pipe_gets_only_the_final_line():
    stream = io.StringIO()
    bar = Progbar(50, interval=0.0, stream=stream)
    values_read = []
    for step in range(1, 51):
        if bar.wants_values(step):
            values_read.append(step)
        bar.update(step, {"loss": lambda: 0.5})
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 1 and lines[0].startswith("50/50 ") and "loss: 0.5000" in lines[0]
    assert values_read == [50]   # nothing is read back (no GPU sync) for lines that are not drawn


def test_verbose_2_prints_one_line_without_bar():
    stream = Terminal()
    bar = Progbar(3, verbose=2, stream=stream)
    for step in range(1, 4):
        bar.update(step, {"accuracy": 0.75})
    assert stream.getvalue().startswith("3/3 - ") and stream.getvalue().count("\n") == 1
    assert "━" not in stream.getvalue() and "accuracy: 0.7500" in stream.getvalue()


def test_ascii_fallback_when_stream_cannot_encode_box_characters():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    bar = Progbar(2, stream=stream)
    bar.update(2, {"loss": 0.1})
    stream.seek(0)
    assert "[====" in stream.read()


def test_values_up_to_1e_3_use_scientific_notation_as_keras_writes_them():
    assert format_value(0.5) == "0.5000"
    assert format_value(1e-5) == "1.0000e-05"
    assert format_value(0.0) == format_value(0.0, verbose=2) == "0.0000e+00"
    assert format_value(123456.0) == "123456.0000"
    assert format_value(-0.5) == "-0.5000"
    # one line per epoch: Keras compares the signed value
    assert format_value(-0.5, verbose=2) == "-5.0000e-01"
    assert format_value(0.5, verbose=2) == "0.5000"
