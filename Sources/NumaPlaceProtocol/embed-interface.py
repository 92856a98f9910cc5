#!/usr/bin/env python3
"""Regenerates ManagerInterface.swift from io.numaplaced.Manager.varlink (a test checks they agree)."""
import os
here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, 'io.numaplaced.Manager.varlink')).read()
assert '"""#' not in src
with open(os.path.join(here, 'ManagerInterface.swift'), 'w') as f:
    f.write('// The interface description served by GetInterfaceDescription. It must equal\n'
            '// io.numaplaced.Manager.varlink byte for byte (a test checks): edit the .varlink file, then run\n'
            '// `python3 Sources/NumaPlaceProtocol/embed-interface.py`.\n'
            'extension Manager {\n    public static let interfaceDescription = #"""\n' + src + '\n"""#\n}\n')
