"""How a classifier network is fed and how its output is read: names shared by the manifest
(``feed`` and ``decode`` of an entry) and the runtime (:mod:`models.runtime.classifier`).

Pure enums, so that reading the manifest needs no OpenCV.
"""

from enum import StrEnum


class Feed(StrEnum):
    """How a network takes its chip."""

    CYDRAL = "cydral"
    """NCHW float32 ``(rgb - [122.782, 117.001, 104.298]) / 256`` (Cydral, models trained here)."""
    BGR_MEAN_NHWC = "bgr-mean-nhwc"
    """NHWC float32 ``bgr - [103.939, 116.779, 123.68]`` (FaceRes)."""
    RGB_255_NCHW = "rgb-255-nchw"
    """NCHW float32 RGB 0..255; the network normalises inside its graph (face-api)."""


class Decode(StrEnum):
    """How a network's output is read."""

    SOFTMAX_FEMALE_MALE = "softmax-female-male"
    SOFTMAX_MALE_FEMALE = "softmax-male-female"
    SIGMOID_MALE = "sigmoid-male"
    BINS_81 = "bins-81"
    """81 probabilities at 0.25, 1, ..., 80 years (Cydral)."""
    BINS_100 = "bins-100"
    """100 probabilities at 1, ..., 100 years (FaceRes); 81 and older fold into the 80 bin."""
    YEARS = "years"
    """One number, the age in years (face-api); spread into bins by :func:`years_to_bins`."""


GENDER_DECODES = frozenset(
    {Decode.SOFTMAX_FEMALE_MALE, Decode.SOFTMAX_MALE_FEMALE, Decode.SIGMOID_MALE}
)
AGE_DECODES = frozenset({Decode.BINS_81, Decode.BINS_100, Decode.YEARS})
