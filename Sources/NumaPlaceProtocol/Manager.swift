import NumaPlaceCore

/// The wire types of `io.numaplaced.Manager` (see `io.numaplaced.Manager.varlink`, which is served
/// verbatim through `GetInterfaceDescription`). The types themselves are generated from that file
/// (`*.generated.swift`, by `generate-types.py`); what maps them to the model is in `Manager+Model.swift`.
public enum Manager {
    public static let interface = "io.numaplaced.Manager"

    // MARK: Errors

    public static func noSuchDevice(_ address: String) -> VarlinkError {
        VarlinkError("\(interface).NoSuchDevice", ["address": .string(address)])
    }
    public static func noSuchNode(_ node: Int) -> VarlinkError {
        VarlinkError("\(interface).NoSuchNode", ["node": .int(node)])
    }
    public static func noSuchWorker(_ id: String) -> VarlinkError {
        VarlinkError("\(interface).NoSuchWorker", ["id": .string(id)])
    }
    public static func placementImpossible(_ reason: String) -> VarlinkError {
        VarlinkError("\(interface).PlacementImpossible", ["reason": .string(reason)])
    }
    public static func spawnFailed(step: String, errno: Int32, message: String) -> VarlinkError {
        VarlinkError("\(interface).SpawnFailed", ["step": .string(step), "errno": .int(Int(errno)), "message": .string(message)])
    }
    public static func permissionDenied(_ reason: String) -> VarlinkError {
        VarlinkError("\(interface).PermissionDenied", ["reason": .string(reason)])
    }
    public static func invalidParameter(_ parameter: String, _ reason: String) -> VarlinkError {
        VarlinkError("\(interface).InvalidParameter", ["parameter": .string(parameter), "reason": .string(reason)])
    }
    public static func limitExceeded(_ limit: String, maximum: Int) -> VarlinkError {
        VarlinkError("\(interface).LimitExceeded", ["limit": .string(limit), "maximum": .int(maximum)])
    }

    /// Maps a placement failure to its Varlink error.
    public static func error(for e: PlacementError) -> VarlinkError {
        switch e {
        case .noSuchDevice(let a): return noSuchDevice(a.description)
        case .noSuchNode(let n): return noSuchNode(n.rawValue)
        case .impossible(let why): return placementImpossible(why)
        case .invalid(let p, let why): return invalidParameter(p, why)
        }
    }
}

/// `org.varlink.service`, which every Varlink service implements.
public enum VarlinkService {
    public static let interface = "org.varlink.service"

    public struct GetInfoReply: Codable, Hashable, Sendable {
        public var vendor: String
        public var product: String
        public var version: String
        public var url: String
        public var interfaces: [String]
        public init(vendor: String, product: String, version: String, url: String, interfaces: [String]) {
            self.vendor = vendor
            self.product = product
            self.version = version
            self.url = url
            self.interfaces = interfaces
        }
    }

    public struct GetInterfaceDescriptionParameters: Codable, Hashable, Sendable {
        public var interface: String
        public init(interface: String) { self.interface = interface }
    }

    public struct GetInterfaceDescriptionReply: Codable, Hashable, Sendable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The standard description of org.varlink.service, as the Varlink specification defines it.
    public static let description = """
    # The Varlink Service Interface is provided by every varlink service. It
    # describes the service and the interfaces it implements.
    interface org.varlink.service

    # Get a list of all the interfaces a service provides and information
    # about the implementation.
    method GetInfo() -> (
      vendor: string,
      product: string,
      version: string,
      url: string,
      interfaces: []string
    )

    # Get the description of an interface that is implemented by this service.
    method GetInterfaceDescription(interface: string) -> (description: string)

    # The requested interface was not found.
    error InterfaceNotFound (interface: string)

    # The requested method was not found
    error MethodNotFound (method: string)

    # The interface defines the requested method, but the service does not
    # implement it.
    error MethodNotImplemented (method: string)

    # One of the passed parameters is invalid.
    error InvalidParameter (parameter: string)

    # Client is denied access
    error PermissionDenied ()

    # Method is expected to be called with 'more' set to true, but wasn't
    error ExpectedMore ()

    """
}
