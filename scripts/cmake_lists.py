"""Regenerate the file lists of SemanticSynth/CMakeLists.txt and SemanticSynthLib/CMakeLists.txt after adding,
moving or removing a file of the extension (Testing/test_extension_files.py fails until they match the tree).

python scripts/cmake_lists.py

The lists are computed in Testing/cmake_lists.py, which the test reads as well; this is its command-line front end.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from cmake_lists import main  # noqa: E402

if __name__ == "__main__":
    main()
