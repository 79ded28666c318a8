import Foundation
import PRProtocol
import PRTransport

/// FAKE: an in-process model of one logical unit's SPC-4 persistent
/// reservation state, seen through several I_T nexuses (each a label such
/// as "host-a"). It stands in for a SAN LU where this machine has none
/// (kernel SG_IO, the qemu-pr-helper's SG_IO), so whole PR flows run in
/// tests. It answers PERSISTENT RESERVE IN (READ KEYS, READ RESERVATION,
/// REPORT CAPABILITIES), PERSISTENT RESERVE OUT (REGISTER, REGISTER AND
/// IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND
/// ABORT), TEST UNIT READY, READ(10) and WRITE(10) with the access rules of
/// each reservation type, and reports unit attentions per nexus.
///
/// READ FULL STATUS only when made with `readsFullStatus` (tgt has none,
/// LIO has it); each descriptor carries the nexus label as an iSCSI
/// TransportID. Not modelled: REGISTER AND MOVE, SPEC_I_PT and
/// ALL_TG_PT (refused with ILLEGAL REQUEST, and REPORT CAPABILITIES says
/// so), scopes other than LU, task abortion, stored data.
public final class FakePRDevice: @unchecked Sendable {
    public typealias Nexus = String

    public struct Reservation: Equatable, Sendable {
        /// The nexus that holds it; for all-registrants types every registrant holds it.
        public var holder: Nexus
        public var type: UInt8
    }

    private let lock = NSLock()
    private var registrations: [(nexus: Nexus, key: UInt64)] = []
    private var reservationState: Reservation?
    private var generationValue: UInt32 = 0
    private var aptpl = false
    private var pendingUnitAttentions: [Nexus: [SenseCode]] = [:]
    private var announcesPowerOn: Bool
    private var seenSincePowerOn: Set<Nexus> = []
    private let refusesAPTPL: Bool
    private let readsFullStatus: Bool

    /// - Parameter reportsPowerOn: whether each nexus's first command gets
    ///   the UNIT ATTENTION 29/00 a freshly powered-on LU reports.
    /// - Parameter refusesAPTPL: like tgt: REPORT CAPABILITIES says PTPL_C=0
    ///   and a REGISTER with APTPL gets ILLEGAL REQUEST, invalid field in CDB.
    /// - Parameter readsFullStatus: like LIO: answers READ FULL STATUS
    ///   (else ILLEGAL REQUEST, invalid field in CDB, like tgt).
    public init(reportsPowerOn: Bool = false, refusesAPTPL: Bool = false, readsFullStatus: Bool = false) {
        announcesPowerOn = reportsPowerOn
        self.readsFullStatus = readsFullStatus
        self.refusesAPTPL = refusesAPTPL
    }

    // MARK: Inspection (for assertions; PR IN is the SCSI-level view)

    public var generation: UInt32 { lock.withLock { generationValue } }
    public var reservation: Reservation? { lock.withLock { reservationState } }
    public func key(of nexus: Nexus) -> UInt64? { lock.withLock { registeredKey(nexus) } }
    public var registeredKeys: [UInt64] { lock.withLock { registrations.map(\.key) } }

    // MARK: Events from outside the command stream

    /// Queues a unit attention for one nexus (e.g. 29/07 I_T nexus loss).
    public func raiseUnitAttention(for nexus: Nexus, asc: UInt8, ascq: UInt8) {
        lock.withLock { queue(SenseCode(key: .unitAttention, asc: asc, ascq: ascq), for: [nexus]) }
    }

    /// Power loss: registrations and reservation survive only if the last
    /// registration asked for APTPL; every nexus then sees 29/00 once.
    public func powerCycle() {
        lock.withLock {
            if !aptpl {
                registrations = []
                reservationState = nil
            }
            pendingUnitAttentions = [:]
            seenSincePowerOn = []
            announcesPowerOn = true
        }
    }

    // MARK: Commands

    /// Executes one CDB as received on `nexus`. `dataOut` is the data-out
    /// buffer; `allocationLength` the data-in buffer size.
    public func execute(cdb: [UInt8], dataOut: [UInt8] = [], allocationLength: Int = 0, from nexus: Nexus) -> SCSIResponse {
        lock.withLock {
            guard let opcode = cdb.first else { return check(.invalidOpcode) }
            if announcesPowerOn && !seenSincePowerOn.contains(nexus) {
                seenSincePowerOn.insert(nexus)
                queue(.powerOn, for: [nexus])
            }
            if let attention = pendingUnitAttentions[nexus]?.first {
                pendingUnitAttentions[nexus]?.removeFirst()
                return check(attention)
            }
            switch opcode {
            case 0x5E where cdb.count >= 10:
                let inCDB = Int(cdb[7]) << 8 | Int(cdb[8])
                return persistentReserveIn(serviceAction: cdb[1] & 0x1F, limit: min(inCDB, allocationLength))
            case 0x5F where cdb.count >= 10:
                return persistentReserveOut(cdb: cdb, parameters: dataOut, nexus: nexus)
            case 0x00:
                return SCSIResponse(status: Status.good)
            case 0x28 where cdb.count >= 10:
                return accessAllowed(nexus, write: false)
                    ? SCSIResponse(status: Status.good, data: [UInt8](repeating: 0, count: allocationLength))
                    : SCSIResponse(status: Status.reservationConflict)
            case 0x2A where cdb.count >= 10:
                return SCSIResponse(status: accessAllowed(nexus, write: true) ? Status.good : Status.reservationConflict)
            default:
                return check(.invalidOpcode)
            }
        }
    }

    // MARK: PERSISTENT RESERVE IN

    private func persistentReserveIn(serviceAction: UInt8, limit: Int) -> SCSIResponse {
        var data: [UInt8]
        switch serviceAction {
        case 0:  // READ KEYS
            data = be32(generationValue) + be32(UInt32(registrations.count * 8))
            for registration in registrations { data += be64(registration.key) }
        case 1:  // READ RESERVATION
            data = be32(generationValue)
            if let reservation = reservationState {
                let key = Self.isAllRegistrants(reservation.type) ? 0 : (registeredKey(reservation.holder) ?? 0)
                data += be32(16) + be64(key) + [0, 0, 0, 0, 0, reservation.type & 0x0F, 0, 0]
            } else {
                data += be32(0)
            }
        case 2:  // REPORT CAPABILITIES
            // PTPL_C; TMV with PTPL_A; all six types (WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX | EX_AC_AR).
            data = [0x00, 0x08, refusesAPTPL ? 0x00 : 0x01, 0x80 | (aptpl ? 0x01 : 0), 0xEA, 0x01, 0x00, 0x00]
        case 3 where readsFullStatus:  // READ FULL STATUS
            var descriptors: [UInt8] = []
            for registration in registrations {
                var holds = false
                if let r = reservationState {
                    holds = Self.isAllRegistrants(r.type) || r.holder == registration.nexus
                }
                let name = Array("\(registration.nexus),i,0x4c4d47000000".utf8) + [0]
                let padded = name + [UInt8](repeating: 0, count: (4 - name.count % 4) % 4)
                let transportID: [UInt8] = [0x05, 0] + [UInt8(padded.count >> 8), UInt8(padded.count & 0xFF)] + padded
                descriptors += be64(registration.key) + [0, 0, 0, 0]
                descriptors += [holds ? 0x01 : 0x00, holds ? (reservationState?.type ?? 0) & 0x0F : 0]
                descriptors += [0, 0, 0, 0, 0, 1] + be32(UInt32(transportID.count)) + transportID
            }
            data = be32(generationValue) + be32(UInt32(descriptors.count)) + descriptors
        default:
            return check(.invalidFieldInCDB)
        }
        return SCSIResponse(status: Status.good, data: Array(data.prefix(max(0, limit))))
    }

    // MARK: PERSISTENT RESERVE OUT

    private func persistentReserveOut(cdb: [UInt8], parameters: [UInt8], nexus: Nexus) -> SCSIResponse {
        let serviceAction = cdb[1] & 0x1F
        let scope = cdb[2] >> 4
        let type = cdb[2] & 0x0F
        let listLength = Int(readBE32(cdb, at: 5))
        guard [0, 1, 2, 3, 4, 5, 6].contains(serviceAction) else { return check(.invalidFieldInCDB) }
        guard listLength == 24, parameters.count == 24 else { return check(.parameterListLengthError) }
        let reservationKey = readBE64(parameters, at: 0)
        let serviceActionKey = readBE64(parameters, at: 8)
        let flags = parameters[20]
        // SPEC_I_PT and ALL_TG_PT are not supported (REPORT CAPABILITIES says SIP_C=0, ATP_C=0).
        guard flags & 0x0C == 0 else { return check(.invalidFieldInParameterList) }

        let own = registeredKey(nexus)
        if refusesAPTPL && (serviceAction == 0 || serviceAction == 6) && flags & 0x01 != 0 {
            return check(.invalidFieldInCDB)
        }
        if serviceAction == 6 {
            return register(nexus, newKey: serviceActionKey, aptplFlag: flags & 0x01 != 0)
        }
        if serviceAction == 0 {
            // An unregistered nexus must present key 0; a registered one its own key.
            guard (own ?? 0) == reservationKey else { return SCSIResponse(status: Status.reservationConflict) }
            return register(nexus, newKey: serviceActionKey, aptplFlag: flags & 0x01 != 0)
        }
        guard let own, own == reservationKey else { return SCSIResponse(status: Status.reservationConflict) }
        switch serviceAction {
        case 1: return reserve(nexus, scope: scope, type: type)
        case 2: return release(nexus, scope: scope, type: type)
        case 3: return clear(nexus)
        default: return preempt(nexus, victimKey: serviceActionKey, scope: scope, type: type)
        }
    }

    private func register(_ nexus: Nexus, newKey: UInt64, aptplFlag: Bool) -> SCSIResponse {
        if let index = registrations.firstIndex(where: { $0.nexus == nexus }) {
            if newKey == 0 {
                registrations.remove(at: index)
                releaseAfterUnregistering(nexus)
            } else {
                registrations[index].key = newKey
            }
        } else if newKey != 0 {
            registrations.append((nexus, newKey))
        }
        aptpl = aptplFlag
        generationValue &+= 1
        return SCSIResponse(status: Status.good)
    }

    /// SPC-4 5.12.11.2.2: a holder that unregisters releases the reservation
    /// (all-registrants types: only the last registrant does).
    private func releaseAfterUnregistering(_ nexus: Nexus) {
        guard let reservation = reservationState else { return }
        if Self.isAllRegistrants(reservation.type) {
            if registrations.isEmpty { reservationState = nil }
        } else if reservation.holder == nexus {
            reservationState = nil
            if Self.isRegistrantsOnly(reservation.type) {
                queue(.reservationsReleased, for: registrations.map(\.nexus))
            }
        }
    }

    private func reserve(_ nexus: Nexus, scope: UInt8, type: UInt8) -> SCSIResponse {
        guard scope == 0, Self.validTypes.contains(type) else { return check(.invalidFieldInCDB) }
        if let reservation = reservationState {
            // Re-reserving with the same type and scope is a no-op; anything else conflicts.
            let same = isHolder(nexus) && reservation.type == type
            return SCSIResponse(status: same ? Status.good : Status.reservationConflict)
        }
        reservationState = Reservation(holder: nexus, type: type)
        return SCSIResponse(status: Status.good)
    }

    private func release(_ nexus: Nexus, scope: UInt8, type: UInt8) -> SCSIResponse {
        guard let reservation = reservationState, isHolder(nexus) else {
            return SCSIResponse(status: Status.good)  // nothing of ours to release
        }
        guard scope == 0, reservation.type == type else { return check(.invalidReleaseOfReservation) }
        reservationState = nil
        if Self.isRegistrantsOnly(reservation.type) || Self.isAllRegistrants(reservation.type) {
            queue(.reservationsReleased, for: registrations.map(\.nexus).filter { $0 != nexus })
        }
        return SCSIResponse(status: Status.good)
    }

    private func clear(_ nexus: Nexus) -> SCSIResponse {
        queue(.reservationsPreempted, for: registrations.map(\.nexus).filter { $0 != nexus })
        registrations = []
        reservationState = nil
        generationValue &+= 1
        return SCSIResponse(status: Status.good)
    }

    /// SPC-4 5.12.11.4: PREEMPT of the holder's key takes the reservation
    /// over (with the new type) and removes the holder's registrations;
    /// PREEMPT of any other key only removes the registrations with it.
    private func preempt(_ nexus: Nexus, victimKey: UInt64, scope: UInt8, type: UInt8) -> SCSIResponse {
        let takesReservation: Bool
        if let reservation = reservationState {
            if Self.isAllRegistrants(reservation.type) {
                takesReservation = victimKey == 0
            } else {
                takesReservation = registeredKey(reservation.holder) == victimKey
            }
        } else {
            takesReservation = false
        }

        if takesReservation, let old = reservationState {
            guard scope == 0, Self.validTypes.contains(type) else { return check(.invalidFieldInCDB) }
            let removed = registrations.filter {
                $0.nexus != nexus && (Self.isAllRegistrants(old.type) || $0.key == victimKey)
            }.map(\.nexus)
            registrations.removeAll { removed.contains($0.nexus) }
            queue(.registrationsPreempted, for: removed)
            reservationState = Reservation(holder: nexus, type: type)
            if old.type != type {
                queue(.reservationsReleased, for: registrations.map(\.nexus).filter { $0 != nexus })
            }
            generationValue &+= 1
            return SCSIResponse(status: Status.good)
        }

        guard victimKey != 0 else { return check(.invalidFieldInParameterList) }
        let removed = registrations.filter { $0.key == victimKey }.map(\.nexus)
        guard !removed.isEmpty else { return SCSIResponse(status: Status.reservationConflict) }
        registrations.removeAll { $0.key == victimKey }
        queue(.registrationsPreempted, for: removed.filter { $0 != nexus })
        if let reservation = reservationState, Self.isAllRegistrants(reservation.type), registrations.isEmpty {
            reservationState = nil
        }
        generationValue &+= 1
        return SCSIResponse(status: Status.good)
    }

    // MARK: Access rules (SPC-4 table "task management and reservation type")

    private func accessAllowed(_ nexus: Nexus, write: Bool) -> Bool {
        guard let reservation = reservationState, !isHolder(nexus) else { return true }
        let registered = registeredKey(nexus) != nil
        switch reservation.type {
        case 1: return !write  // Write Exclusive
        case 3: return false  // Exclusive Access
        case 5, 7: return registered || !write  // Write Exclusive, registrants only / all registrants
        case 6, 8: return registered  // Exclusive Access, registrants only / all registrants
        default: return false
        }
    }

    // MARK: Helpers

    static let validTypes: Set<UInt8> = [1, 3, 5, 6, 7, 8]
    static func isRegistrantsOnly(_ type: UInt8) -> Bool { type == 5 || type == 6 }
    static func isAllRegistrants(_ type: UInt8) -> Bool { type == 7 || type == 8 }

    private func registeredKey(_ nexus: Nexus) -> UInt64? {
        registrations.first { $0.nexus == nexus }?.key
    }

    private func isHolder(_ nexus: Nexus) -> Bool {
        guard let reservation = reservationState else { return false }
        return Self.isAllRegistrants(reservation.type) ? registeredKey(nexus) != nil : reservation.holder == nexus
    }

    private func queue(_ code: SenseCode, for nexuses: [Nexus]) {
        for nexus in nexuses where !(pendingUnitAttentions[nexus] ?? []).contains(code) {
            pendingUnitAttentions[nexus, default: []].append(code)
        }
    }

    private func check(_ code: SenseCode) -> SCSIResponse {
        SCSIResponse(status: Status.checkCondition, sense: SenseData(key: code.key.rawValue, asc: code.asc, ascq: code.ascq))
    }

    enum Status {
        static let good: UInt8 = 0x00
        static let checkCondition: UInt8 = 0x02
        static let reservationConflict: UInt8 = 0x18
    }
}

/// Sense key + additional sense code/qualifier, as the fake reports them.
struct SenseCode: Equatable {
    enum Key: UInt8 { case illegalRequest = 0x05, unitAttention = 0x06 }
    var key: Key
    var asc: UInt8
    var ascq: UInt8

    static let invalidOpcode = SenseCode(key: .illegalRequest, asc: 0x20, ascq: 0x00)
    static let invalidFieldInCDB = SenseCode(key: .illegalRequest, asc: 0x24, ascq: 0x00)
    static let invalidFieldInParameterList = SenseCode(key: .illegalRequest, asc: 0x26, ascq: 0x00)
    static let invalidReleaseOfReservation = SenseCode(key: .illegalRequest, asc: 0x26, ascq: 0x04)
    static let parameterListLengthError = SenseCode(key: .illegalRequest, asc: 0x1A, ascq: 0x00)
    static let powerOn = SenseCode(key: .unitAttention, asc: 0x29, ascq: 0x00)
    static let reservationsPreempted = SenseCode(key: .unitAttention, asc: 0x2A, ascq: 0x03)
    static let reservationsReleased = SenseCode(key: .unitAttention, asc: 0x2A, ascq: 0x04)
    static let registrationsPreempted = SenseCode(key: .unitAttention, asc: 0x2A, ascq: 0x05)

}

extension SenseData {
    /// 18-byte fixed-format sense (response code 0x70, current error), as
    /// the fake SG_IO driver and the fake qemu-pr-helper put it on their wire.
    public var fixedFormat: [UInt8] {
        var sense = [UInt8](repeating: 0, count: 18)
        sense[0] = 0x70
        sense[2] = key
        sense[7] = 10
        sense[12] = asc
        sense[13] = ascq
        return sense
    }
}
