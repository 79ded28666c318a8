/// `block_pr` in the pr plugin's settings: how PR OUT reaches a block device.
public enum BlockPRSetting: String, Sendable, Equatable {
    /// Per device, when it is opened: the kernel's PR ioctls when the
    /// device can take what the kernel sends (REPORT CAPABILITIES says
    /// PTPL_C: sd sets APTPL on every REGISTER), SG_IO otherwise.
    case auto
    /// The kernel's PR ioctls on every block device.
    case always
    /// SG_IO only (the plugin's behaviour before the block-PR transport).
    case never
}
