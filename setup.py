"""Packages: the agent's, plus models/ (ONNX weights and manifests) as `lane_agent_models`."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["edge*", "drivers*", "simulators*"]), "lane_agent_models"],
    package_dir={"lane_agent_models": "models"},
)
