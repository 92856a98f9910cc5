"""What the guest kernel says (the output of guest/np-sysfs), and what numaplaced must therefore reply.

The expected device table is computed here independently of the daemon, from DESIGN.md's rules:
classification (3D controllers 0x0302 and display controllers of GPU makers -> gpu, other display controllers
(bochs, virtio, a BMC's VGA) -> display; 0x0b40 and 0x12 -> accelerator; 0x0207 and 0x0200 of RDMA vendors ->
nic; plus the test bed's configuration: vendor 0x1234 device 0x11e8 -> accelerator) and locality
(numa_node of a node with CPUs -> that node; of a CPU-less node -> the nearest CPU-bearing nodes; -1 ->
local_cpulist unless it is empty or covers every CPU -> unknown).
"""


# PCI vendors whose display-class functions are compute GPUs (DESIGN.md): NVIDIA, AMD, Intel, Hygon,
# Moore Threads, Iluvatar, Biren, MetaX.
GPU_VENDORS = {0x10de, 0x1002, 0x8086, 0x1d94, 0x1ed5, 0x1e3e, 0x1ee0, 0x9999}


def parse_cpulist(text):
    cpus = set()
    for part in text.strip().split(','):
        if not part:
            continue
        if '-' in part:
            a, b = part.split('-')
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return cpus


def format_cpulist(cpus):
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else '%d-%d' % (run[0], run[-1]))
        run = [c]
    if run:
        out.append(str(run[0]) if len(run) == 1 else '%d-%d' % (run[0], run[-1]))
    return ','.join(out)


def _fields(words):
    out = {}
    key = None
    for w in words:
        if '=' in w:
            key, value = w.split('=', 1)
            out[key] = value
        elif key:   # continuation of a multi-word value (distance=10 21 41)
            out[key] += ' ' + w
    return out


class Sysfs:
    """Parsed np-sysfs output."""

    def __init__(self, text):
        self.nodes = {}      # id -> {'cpus': set, 'memory_bytes': int, 'distances': [int]}
        self.pci = {}        # address -> {'class', 'vendor', 'device', 'numa_node': int|None, 'local_cpulist'}
        self.online = self.possible = None
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            if words[0] == 'cpus':
                f = _fields(words[1:])
                self.online, self.possible = f['online'], f['possible']
            elif words[0] == 'node':
                f = _fields(words[2:])
                self.nodes[int(words[1])] = {
                    'cpus': parse_cpulist(f.get('cpulist', '')),
                    'memory_bytes': int(f['memtotal_kb']) * 1024,
                    'distances': [int(x) for x in f.get('distance', '').split()],
                }
            elif words[0] == 'pci':
                f = _fields(words[2:])
                nn = f.get('numa_node', 'missing')
                self.pci[words[1]] = {
                    'class': f['class'], 'vendor': f['vendor'], 'device': f['device'],
                    'numa_node': None if nn in ('missing', '') else int(nn),
                    'local_cpulist': f.get('local_cpulist', ''),
                }

    def node_ids(self):
        return sorted(self.nodes)

    def all_cpus(self):
        return parse_cpulist(self.online)

    @staticmethod
    def kind(dev):
        cls = int(dev['class'], 16)
        vendor, device = int(dev['vendor'], 16), int(dev['device'], 16)
        if (vendor, device) == (0x1234, 0x11e8):
            return 'accelerator'          # the test bed's configuration (guest/numaplaced-vm.conf)
        if cls >> 8 == 0x0302 or (cls >> 16 == 0x03 and vendor in GPU_VENDORS):
            return 'gpu'
        if cls >> 16 == 0x03:
            return 'display'
        if cls >> 8 == 0x0b40 or cls >> 16 == 0x12:
            return 'accelerator'
        if cls >> 8 == 0x0207 or (cls >> 8 == 0x0200 and vendor == 0x15b3):
            return 'nic'
        return None

    def nearest_cpu_nodes(self, node):
        ids = self.node_ids()
        dist = dict(zip(ids, self.nodes[node]['distances']))
        with_cpus = [n for n in ids if self.nodes[n]['cpus']]
        best = min(dist[n] for n in with_cpus)
        return [n for n in with_cpus if dist[n] == best]

    def expected_devices(self):
        """address -> the fields of the Device the daemon must report."""
        out = {}
        for addr, dev in sorted(self.pci.items()):
            kind = self.kind(dev)
            if kind is None:
                continue
            nn = dev['numa_node']
            if nn is not None and nn >= 0 and nn in self.nodes:
                nodes = [nn] if self.nodes[nn]['cpus'] else self.nearest_cpu_nodes(nn)
                cpus = set().union(*(self.nodes[n]['cpus'] for n in nodes))
                e = {'numaNode': nn, 'locality': 'node', 'cpus': format_cpulist(cpus), 'placementNodes': nodes}
            else:
                local = parse_cpulist(dev['local_cpulist'])
                if not local or local >= self.all_cpus():
                    e = {'numaNode': None, 'locality': 'unknown', 'cpus': ''}
                else:
                    e = {'locality': 'cpus', 'cpus': format_cpulist(local)}
            e.update({'address': addr, 'kind': kind, 'class': dev['class'], 'vendor': dev['vendor'],
                      'device': dev['device']})
            out[addr] = e
        return out


def compare_devices(expected, reported):
    """Differences between the expected table and the daemon's devices list, as readable strings."""
    problems = []
    got = {}
    for d in reported:
        if d.get('address') in got:
            problems.append('%s listed twice' % d.get('address'))
        got[d.get('address')] = d
    for addr in sorted(set(expected) - set(got)):
        problems.append('%s missing from the daemon\'s devices' % addr)
    for addr in sorted(set(got) - set(expected)):
        problems.append('%s reported but not a classified device in sysfs' % addr)
    for addr in sorted(set(expected) & set(got)):
        for key, want in expected[addr].items():
            have = got[addr].get(key)
            if key == 'cpus':
                same = parse_cpulist(have or '') == parse_cpulist(want)
            else:
                same = have == want
            if not same:
                problems.append('%s %s: daemon %r, sysfs says %r' % (addr, key, have, want))
    return problems
