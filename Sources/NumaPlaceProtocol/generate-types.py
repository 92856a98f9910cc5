#!/usr/bin/env python3
"""Writes the Swift wire types of io.numaplaced.Manager from io.numaplaced.Manager.varlink.

Run `python3 Sources/NumaPlaceProtocol/generate-types.py` after editing the .varlink file (a test fails
while the checked-in output differs from what this writes). Python standard library only.

The .varlink file says which fields exist, in which order, and which may be null. What it cannot say
lives in the tables below rather than in its comments, because the file is served verbatim to every
client and these are this implementation's encoding choices, not part of the interface:
- SWIFT_TYPES: a field whose Swift type is narrower than the IDL's (an enumerated string, an unsigned
  int), so the values are checked when decoded and compared as enum cases.
- ENUMS: the enumerated values themselves. Varlink's own enum syntax `(a, b)` cannot hold them all
  (`only-node` is not a Varlink identifier), and declaring some in the IDL and others here would split
  the schema in two.
- EXPLICIT_NULL: optional fields written as `null` instead of being left out, so readers see the
  state ("unknown") rather than a gap.
- DEFAULT_WHEN_ABSENT: fields added after the first release; a reply from an older daemon lacks them.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VARLINK = os.path.join(HERE, 'io.numaplaced.Manager.varlink')

SWIFT_TYPES = {
    ('Node', 'memoryBytes'): 'UInt64',
    ('Device', 'kind'): 'DeviceKind',
    ('Device', 'locality'): 'Locality',
    ('ExitStatus', 'how'): 'How',
    ('Worker', 'state'): 'State',
    ('Event', 'kind'): 'Kind',
}

# (owner type, enum name): [(Swift case, wire value)], declared nested in the owner. Device.kind uses
# NumaPlaceCore.DeviceKind, the classifier's own enum with the same raw values. Placement.memoryPolicy
# stays a string: an applied placement carries the policy word numa_maps shows (local,
# weighted-interleave, whatever a newer kernel adds) or "unknown", an open set an enum would have to
# drop or rename. Spawn's memory and admission stay strings too, so that a wrong value reaches the
# daemon's InvalidParameter with its own reason rather than failing in the decoder; the daemon reads
# them into Core's MemoryPolicyMode and Admission.
ENUMS = {
    ('Device', 'Locality'): [('node', 'node'), ('cpus', 'cpus'), ('onlyNode', 'only-node'),
                             ('unknown', 'unknown')],
    ('ExitStatus', 'How'): [('exited', 'exited'), ('killed', 'killed'), ('unknown', 'unknown')],
    ('Worker', 'State'): [('running', 'running'), ('exited', 'exited')],
    ('Event', 'Kind'): [('ready', 'ready'), ('deviceAdded', 'deviceAdded'), ('deviceRemoved', 'deviceRemoved'),
                        ('deviceChanged', 'deviceChanged'), ('workerStarted', 'workerStarted'),
                        ('workerExited', 'workerExited'), ('topologyChanged', 'topologyChanged'),
                        ('configurationReloaded', 'configurationReloaded')],
}

EXPLICIT_NULL = {('Device', 'numaNode'), ('Device', 'memoryNode')}
DEFAULT_WHEN_ABSENT = {('Device', 'nearestNICs'): '[]', ('Device', 'deviceNodes'): '[]',
                       ('Device', 'names'): '[]'}

# Swift names of method parameters and replies that several methods share; otherwise
# `<Method>Parameters` and `<Method>Reply`. Methods without fields get no type.
STRUCT_NAMES = {
    ('Spawn', 'reply'): 'WorkerReply', ('GetWorker', 'reply'): 'WorkerReply', ('Wait', 'reply'): 'WorkerReply',
    ('GetWorker', 'parameters'): 'WorkerIDParameters', ('Wait', 'parameters'): 'WorkerIDParameters',
}

# The messages of the spawn path, written by JSONWriter instead of JSONEncoder (see JSONWriter).
WRITABLE = ['Placement', 'ExitStatus', 'Worker', 'WorkerReply', 'Event', 'MonitorReply',
            # What clients send most (numaplacectl run: Spawn, Wait, Signal).
            'SpawnParameters', 'WorkerIDParameters', 'SignalParameters']
WRITER_NOTES = {
    'Event': ['Worker events (two per spawn) are written directly; a device, rare and rich, goes through',
              '`JSONEncoder` and is copied in.'],
}

SCALARS = {'int': 'Int', 'string': 'String', 'bool': 'Bool', 'float': 'Double'}
KEYWORDS = {'class', 'default', 'in', 'func', 'var', 'let', 'static', 'struct', 'enum', 'protocol', 'case',
            'switch', 'return', 'import', 'init', 'self', 'Self', 'where', 'is', 'as', 'try', 'throw'}


def ident(name):
    return '`%s`' % name if name in KEYWORDS else name


class Field:
    def __init__(self, name, idl, doc):
        self.name, self.idl, self.doc = name, idl, doc
        self.optional = idl.startswith('?')


def parse_fields(text):
    """Fields of `( ... )`, each with the comment lines just above it."""
    fields, doc = [], []
    for raw in text.split('\n'):
        line = raw.strip()
        if line.startswith('#'):
            doc.append(line[1:].strip())
            continue
        for part in [p.strip() for p in line.split(',') if p.strip()]:
            m = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(\S+)', part)
            if not m:
                sys.exit('cannot parse field %r' % part)
            fields.append(Field(m.group(1), m.group(2), doc))
            doc = []
    return fields


def block(src, pos):
    """The text inside the parenthesis that opens at or after `pos` (comments kept), and the end."""
    pos = src.index('(', pos) + 1
    depth, i = 1, pos
    while depth:
        c = src[i]
        if c == '#':
            i = src.index('\n', i)
            continue
        depth += {'(': 1, ')': -1}.get(c, 0)
        i += 1
    return src[pos:i - 1], i


def parse(src):
    """Types (in file order) and methods of the interface, each with its doc comment."""
    types, methods, doc = [], [], []
    pos = 0
    decl = re.compile(r'(type|method|error)\s+(\w+)\s*')
    while pos < len(src):
        line_end = src.find('\n', pos)
        line_end = len(src) if line_end < 0 else line_end
        line = src[pos:line_end].strip()
        m = decl.match(src, pos)
        if line.startswith('#'):
            doc.append(line[1:].strip())
            pos = line_end + 1
            continue
        if m:
            kind, name = m.group(1), m.group(2)
            fields, pos = block(src, m.end())
            if kind == 'type':
                types.append((name, doc, parse_fields(fields)))
            elif kind == 'method':
                arrow = re.match(r'\s*->\s*', src[pos:])
                reply = ''
                if arrow:
                    reply, pos = block(src, pos + arrow.end())
                methods.append((name, doc, parse_fields(fields), parse_fields(reply)))
        else:
            pos = line_end + 1
        doc = []
    return types, methods


def swift_type(owner, f):
    t = SWIFT_TYPES.get((owner, f.name))
    base = f.idl.lstrip('?')
    if t is None:
        if base.startswith('[]'):
            inner = base[2:]
            t = '[%s]' % SCALARS.get(inner, inner)
        else:
            t = SCALARS.get(base, base)
    return t + '?' if f.optional else t


def wrapped(head, items, tail, indent, width=120):
    """`head` + items joined by ", " + `tail`, broken before the width with continuation lines under the
    first item."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (', ' if i < len(items) - 1 else tail)
        if len(line) + len(piece.rstrip()) > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = ' ' * len(head) if indent is None else indent
        line += piece
    return lines + [line]


def doc_lines(doc, indent):
    return ['%s/// %s' % (indent, d) if d else '%s///' % indent for d in doc]


def struct(name, doc, fields, required_first):
    out = doc_lines(doc, '    ')
    out.append('    public struct %s: Codable, Hashable, Sendable {' % name)
    for (owner, enum), cases in ENUMS.items():
        if owner == name:
            out.append('        public enum %s: String, Codable, Hashable, Sendable, CaseIterable {' % enum)
            for case, value in cases:
                out.append('            case %s' % ident(case) + ('' if case == value else ' = "%s"' % value))
            out.append('        }')
            out.append('')
    for f in fields:
        out += doc_lines(f.doc, '        ')
        out.append('        public var %s: %s' % (ident(f.name), swift_type(name, f)))
    out.append('')
    ordered = ([f for f in fields if not f.optional] + [f for f in fields if f.optional]) if required_first else fields
    params = ['%s: %s%s' % (f.name, swift_type(name, f), ' = nil' if f.optional else '') for f in ordered]
    out += wrapped('        public init(', params, ') {', None)
    for f in fields:
        out.append('            self.%s = %s' % (f.name, ident(f.name)))
    out.append('        }')
    if any((name, f.name) in EXPLICIT_NULL or (name, f.name) in DEFAULT_WHEN_ABSENT for f in fields):
        out += custom_codable(name, fields)
    out.append('    }')
    return out


def custom_codable(name, fields):
    out = ['', '        private enum CodingKeys: String, CodingKey {',
           *wrapped('            case ', [ident(f.name) for f in fields], '', '                 '), '        }', '',
           '        public init(from decoder: Decoder) throws {',
           '            let c = try decoder.container(keyedBy: CodingKeys.self)']
    for f in fields:
        t = swift_type(name, f).rstrip('?')
        default = DEFAULT_WHEN_ABSENT.get((name, f.name))
        if default is not None:
            rhs = 'try c.decodeIfPresent(%s.self, forKey: .%s) ?? %s' % (t, f.name, default)
        elif f.optional:
            rhs = 'try c.decodeIfPresent(%s.self, forKey: .%s)' % (t, f.name)
        else:
            rhs = 'try c.decode(%s.self, forKey: .%s)' % (t, f.name)
        out.append('            %s = %s' % (ident(f.name), rhs))
    out += ['        }', '', '        public func encode(to encoder: Encoder) throws {',
            '            var c = encoder.container(keyedBy: CodingKeys.self)']
    for f in fields:
        how = 'encodeIfPresent' if f.optional and (name, f.name) not in EXPLICIT_NULL else 'encode'
        out.append('            try c.%s(%s, forKey: .%s)' % (how, ident(f.name), f.name))
    out.append('        }')
    return out


def writer(name, fields, structs):
    out = ['extension Manager.%s: JSONWritable {' % name]
    out += doc_lines(WRITER_NOTES.get(name, []), '    ')
    out += ['    public func writeJSON(to w: inout JSONWriter) {', '        w.beginObject()']
    for f in fields:
        if (name, f.name) in EXPLICIT_NULL:
            sys.exit('%s.%s: JSONWriter has no explicit null' % (name, f.name))
        base = swift_type(name, f).rstrip('?')
        value = ident(f.name)
        if base in {enum for _, enum in ENUMS} | {'DeviceKind'}:
            value += '?.rawValue' if f.optional else '.rawValue'
        if base in structs and base not in WRITABLE:
            if not f.optional:
                sys.exit('%s.%s: only an optional non-writable field can go through JSONEncoder' % (name, f.name))
            out += ['        if let %s, let json = try? JSONEncoder().encode(%s) {' % (value, value),
                    '            w.key("%s")' % f.name, '            w.raw(Array(json))', '        }']
        else:
            out.append('        w.member("%s", %s)' % (f.name, value))
    out += ['        w.endObject()', '    }', '}']
    return out


HEADER = ['// Generated by generate-types.py from io.numaplaced.Manager.varlink; do not edit. Edit the .varlink',
          '// file (or the generator\'s tables), then run `python3 Sources/NumaPlaceProtocol/generate-types.py`.']


def generate():
    types, methods = parse(open(VARLINK).read())
    structs = {name: (doc, fields) for name, doc, fields in types}
    for key in SWIFT_TYPES:
        if key[0] not in structs or key[1] not in [f.name for f in structs[key[0]][1]]:
            sys.exit('SWIFT_TYPES names %s.%s, which the .varlink file lacks' % key)

    calls = {}
    for method, doc, params, reply in methods:
        for side, fields in (('parameters', params), ('reply', reply)):
            if not fields:
                continue
            name = STRUCT_NAMES.get((method, side), method + ('Parameters' if side == 'parameters' else 'Reply'))
            sig = [(f.name, f.idl) for f in fields]
            if name in calls and calls[name][:2] != (side, sig):
                sys.exit('%s: methods sharing it disagree on its fields' % name)
            calls.setdefault(name, (side, sig, fields, []))[3].append(method)

    prelude = HEADER + ['#if canImport(FoundationEssentials)', 'import FoundationEssentials', '#else',
                        'import Foundation', '#endif', 'import NumaPlaceCore', '']
    out_types = prelude + ['extension Manager {']
    for i, (name, doc, fields) in enumerate(types):
        out_types += ([''] if i else []) + struct(name, doc, fields, required_first=False)
    out_types.append('}')

    out_calls = HEADER[:] + ['import NumaPlaceCore', '', '// Method parameters and replies.',
                             'extension Manager {']
    for i, (name, (side, _, fields, users)) in enumerate(calls.items()):
        doc = ['The %s of %s.' % (side, ', '.join('`%s`' % u for u in users))]
        out_calls += ([''] if i else []) + struct(name, doc, fields, required_first=(side == 'parameters'))
    out_calls.append('}')

    all_fields = {name: fields for name, (_, fields) in structs.items()}
    all_fields.update({name: fields for name, (_, _, fields, _) in calls.items()})
    out_writers = prelude[:]
    for i, name in enumerate(WRITABLE):
        out_writers += ([''] if i else []) + writer(name, all_fields[name], all_fields)

    return {
        'ManagerTypes.generated.swift': '\n'.join(out_types) + '\n',
        'ManagerCalls.generated.swift': '\n'.join(out_calls) + '\n',
        'ManagerWriters.generated.swift': '\n'.join(out_writers) + '\n',
    }


if __name__ == '__main__':
    # `--check` writes nothing and exits 1 when a checked-in file differs (for tests and CI).
    check = '--check' in sys.argv[1:]
    stale = []
    for name, text in generate().items():
        path = os.path.join(HERE, name)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not check:
                with open(path, 'w') as f:
                    f.write(text)
    if check and stale:
        print('stale: ' + ', '.join(stale))
        sys.exit(1)
