// SPDX-License-Identifier: Apache-2.0
//
// Compiled by scripts/contract.sh with solc-js 0.8.30, optimizer on (200
// runs), EVM version cancun. Do not change the pragma without regenerating
// the artifacts next to this file (scripts/contract.sh build).
pragma solidity 0.8.30;

/// @title ColdchainAnchor records Merkle roots with the block that anchored them.
/// @notice Anyone may anchor a root: the contract proves that a root existed at
/// a block, not who computed it. A root is anchored once; anchoring it again
/// reverts, so the first block and time can never be overwritten.
contract ColdchainAnchor {
    /// Record is one anchored root, packed into a single storage slot.
    struct Record {
        uint64 blockNumber;
        uint64 timestamp;
        uint64 epoch;
    }

    mapping(bytes32 => Record) private records;

    /// Anchored is emitted once per root, in the transaction that anchors it.
    event Anchored(bytes32 indexed root, uint64 epoch);

    /// AlreadyAnchored: root was anchored before, at blockNumber.
    error AlreadyAnchored(bytes32 root, uint64 blockNumber);

    /// ZeroRoot: the all-zero root is refused (it marks "not anchored").
    error ZeroRoot();

    /// anchor records root as the root of epoch at the current block.
    function anchor(bytes32 root, uint64 epoch) external {
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 prev = records[root].blockNumber;
        if (prev != 0) revert AlreadyAnchored(root, prev);
        records[root] = Record(uint64(block.number), uint64(block.timestamp), epoch);
        emit Anchored(root, epoch);
    }

    /// anchoredAt returns the block number and block timestamp (Unix seconds)
    /// at which root was anchored, or (0, 0) if it never was.
    function anchoredAt(bytes32 root) external view returns (uint64 blockNumber, uint64 timestamp) {
        Record storage r = records[root];
        return (r.blockNumber, r.timestamp);
    }

    /// epochOf returns the epoch root was anchored as (0 if never anchored).
    function epochOf(bytes32 root) external view returns (uint64) {
        return records[root].epoch;
    }
}
