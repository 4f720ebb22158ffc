// SPDX-License-Identifier: MIT
// A stand-in for peaq's DID precompile (0x0000000000000000000000000000000000000800)
// with the same ABI as peaq-network-node's precompiles/peaq-did/did.sol:
// addAttribute, updateAttribute, readAttribute, removeAttribute and their
// events. depai's tests put its runtime code at the precompile's address on
// anvil (anvil_setCode), so they check depai's ABI use — selectors, argument
// and return encoding, reverts for a missing attribute — not peaq's Substrate
// semantics: the real precompile keeps attributes in the DID pallet, checks
// the owner there and counts validity in blocks with its own limits.
// Regenerate the Go artifact with agent/wallet/testdata/gen.sh.
pragma solidity ^0.8.20;

contract PeaqDID {
    struct Attribute {
        bytes name;
        bytes value;
        uint32 validity;
        uint256 created;
    }

    mapping(bytes32 => Attribute) private attrs;
    mapping(bytes32 => address) private owners;

    event AddAttribute(address sender, address did_account, bytes name, bytes value, uint32 validity);
    event UpdateAttribute(address sender, address did_account, bytes name, bytes value, uint32 validity);
    event RemoveAttribute(address did_account, bytes name);

    function key(address did_account, bytes memory name) private pure returns (bytes32) {
        return keccak256(abi.encode(did_account, name));
    }

    function validUntil(uint32 validity_for) private view returns (uint32) {
        if (validity_for == 0) {
            return type(uint32).max;
        }
        return uint32(block.number) + validity_for;
    }

    function readAttribute(address did_account, bytes memory name) external view returns (Attribute memory) {
        Attribute memory a = attrs[key(did_account, name)];
        require(a.created != 0, "Cannot find the item");
        return a;
    }

    function addAttribute(address did_account, bytes memory name, bytes memory value, uint32 validity_for) external returns (bool) {
        require(name.length <= 64, "Name too long");
        require(value.length <= 2560, "Value too long");
        bytes32 k = key(did_account, name);
        require(attrs[k].created == 0, "AttributeAlreadyExist");
        attrs[k] = Attribute(name, value, validUntil(validity_for), block.timestamp);
        owners[k] = msg.sender;
        emit AddAttribute(msg.sender, did_account, name, value, attrs[k].validity);
        return true;
    }

    function updateAttribute(address did_account, bytes memory name, bytes memory value, uint32 validity_for) external returns (bool) {
        require(value.length <= 2560, "Value too long");
        bytes32 k = key(did_account, name);
        require(attrs[k].created != 0, "AttributeNotFound");
        require(owners[k] == msg.sender, "AttributeAuthorizationFailed");
        attrs[k].value = value;
        attrs[k].validity = validUntil(validity_for);
        emit UpdateAttribute(msg.sender, did_account, name, value, attrs[k].validity);
        return true;
    }

    function removeAttribute(address did_account, bytes memory name) external returns (bool) {
        bytes32 k = key(did_account, name);
        require(attrs[k].created != 0, "AttributeNotFound");
        require(owners[k] == msg.sender, "AttributeAuthorizationFailed");
        delete attrs[k];
        delete owners[k];
        emit RemoveAttribute(did_account, name);
        return true;
    }
}
