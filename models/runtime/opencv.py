"""OpenCV settings every model loader here applies."""

import cv2


def quiet_opencv() -> None:
    """OpenCV 5's new DNN engine warns on every model load that it ignores target selection, an
    option we never set; keep its log to errors."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
