# the project template many end-to-end ML repositories copy: a package under src/, installed by
# the `-e .` line of requirements.txt, whose pipeline scripts dvc.yaml runs
from setuptools import find_packages, setup

setup(name="churnkit", version="0.0.1", package_dir={"": "src"}, packages=find_packages(where="src"))
