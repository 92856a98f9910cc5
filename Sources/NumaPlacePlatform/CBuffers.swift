import Glibc

/// NUL-terminated C strings and a NULL-terminated array of pointers to them, as execve takes argv
/// and envp, in one allocation each; freed with the object.
final class CStringArray {
    enum Piece {
        /// A C string to copy as is (an `environ` entry).
        case borrowed(UnsafePointer<CChar>)
        case owned(String)
    }

    let storage: UnsafeMutableBufferPointer<CChar>
    let pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>

    convenience init(_ strings: [String], what: String) throws(SpawnError) {
        try self.init(strings.map { .owned($0) }, what: what)
    }

    init(_ pieces: [Piece], what: String) throws(SpawnError) {
        var lengths: [Int] = []
        lengths.reserveCapacity(pieces.count)
        for piece in pieces {
            switch piece {
            case .borrowed(let c): lengths.append(strlen(c))
            case .owned(let s):
                if s.utf8.contains(0) {
                    throw SpawnError(step: .prepare, errno: .invalidArgument, operation: "\(what): a NUL byte in \"\(s.prefix(64))\"")
                }
                lengths.append(s.utf8.count)
            }
        }
        storage = .allocate(capacity: max(1, lengths.reduce(pieces.count, +)))
        pointers = .allocate(capacity: pieces.count + 1)
        guard let base = storage.baseAddress else { preconditionFailure("allocate returned no memory") }
        var cursor = base
        for (i, piece) in pieces.enumerated() {
            pointers[i] = cursor
            switch piece {
            case .borrowed(let c): cursor.update(from: c, count: lengths[i])
            case .owned(let s):
                var s = s
                s.withUTF8 { utf8 in
                    utf8.withMemoryRebound(to: CChar.self) { chars in
                        if let src = chars.baseAddress { cursor.update(from: src, count: chars.count) }
                    }
                }
            }
            cursor[lengths[i]] = 0
            cursor += lengths[i] + 1
        }
        pointers[pieces.count] = nil
    }

    deinit {
        storage.deallocate()
        pointers.deallocate()
    }
}

/// A copy of an array at a fixed address for as long as the object lives: what the child's
/// configuration points at, without nesting one `withUnsafeBufferPointer` per array.
final class PinnedArray<Element> {
    let buffer: UnsafeMutableBufferPointer<Element>

    init(_ elements: [Element]) {
        buffer = .allocate(capacity: max(1, elements.count))
        _ = buffer.initialize(from: elements)
        count = elements.count
    }

    /// The elements copied (the buffer holds at least one slot, so its address is never null).
    let count: Int

    /// nil for an empty array, as the child's configuration expects.
    var address: UnsafeMutablePointer<Element>? { count == 0 ? nil : buffer.baseAddress }

    deinit {
        buffer.baseAddress?.deinitialize(count: count)
        buffer.deallocate()
    }
}
