"""extract_vmlinux.py BZIMAGE OUT: writes the uncompressed ELF vmlinux inside a bzImage to OUT.

The bzImage is setup code followed by the compressed kernel; find the payload's magic (XZ for Debian's
kernels, gzip as a fallback) and decompress from there. QEMU boots the ELF through its PVH entry.
"""
import lzma
import sys
import zlib


def main(src, dst):
    data = open(src, 'rb').read()
    decoders = ((b'\xfd7zXZ\x00', lambda b: lzma.LZMADecompressor().decompress(b)),
                (b'\x1f\x8b\x08', lambda b: zlib.decompressobj(31).decompress(b)))
    for magic, decode in decoders:
        start = data.find(magic)
        while start >= 0:
            try:
                out = decode(data[start:])
            except (lzma.LZMAError, zlib.error):
                out = b''
            if out[:4] == b'\x7fELF':
                with open(dst, 'wb') as f:
                    f.write(out)
                return 0
            start = data.find(magic, start + 1)
    sys.exit('%s: no XZ or gzip compressed ELF kernel inside' % src)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
