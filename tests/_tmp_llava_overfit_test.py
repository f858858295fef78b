import pytest
from test_conformance import CODECS, TestEveryCodecOnLlava


class TestAllOverfit(TestEveryCodecOnLlava):
    overfit_codecs = None
