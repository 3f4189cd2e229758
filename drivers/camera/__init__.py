"""ANPR/IP cameras through OpenCV: RTSP, HTTP MJPEG, HTTP snapshots (digest), files."""
