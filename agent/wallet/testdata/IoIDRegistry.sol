// SPDX-License-Identifier: MIT
// A stand-in for IoTeX's ioIDRegistry with the ABI of iotexproject/ioID-contracts
// (contracts/ioIDRegistry.sol): register(deviceContract, tokenId, device, hash,
// uri, v, r, s), update, exists, documentID, documentHash, documentURI,
// deviceTokenId, nonces, permitHash and the NewDevice/UpdateDevice events. The
// device's signature is checked exactly as there — EIP-712 domain
// "ioIDRegistry" version "1", Permit(address owner,uint256 nonce) — so depai's
// tests check its ABI use and its signature, not ioID's semantics: the real
// registry also takes the device NFT from its owner, activates the ioID in
// the ioIDStore of the NFT's project and mints the ioID NFT with its ERC-6551
// account; none of that is modelled here (the token id is only recorded).
// Regenerate the Go artifact with agent/wallet/testdata/gen.sh.
pragma solidity ^0.8.20;

contract IoIDRegistry {
    event NewDevice(address indexed device, address owner, bytes32 hash, string uri);
    event UpdateDevice(address indexed device, address owner, bytes32 hash, string uri);

    bytes32 public constant EIP712DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant PERMIT_TYPE_HASH = keccak256("Permit(address owner,uint256 nonce)");
    string public constant METHOD = "did:io:";

    struct Record {
        bytes32 hash;
        string uri;
    }

    mapping(address => uint256) private _nonces;
    mapping(address => Record) private records;
    mapping(address => uint256) private ids;
    mapping(address => mapping(uint256 => bool)) public registeredNFT;

    modifier deviceExists(address device) {
        require(records[device].hash != bytes32(0), "device not exists");
        _;
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(EIP712DOMAIN_TYPEHASH, keccak256(bytes("ioIDRegistry")), keccak256(bytes("1")), block.chainid, address(this)));
    }

    function checkPermit(address owner, address device, uint8 v, bytes32 r, bytes32 s) private {
        uint256 nonce = _nonces[device]++;
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), keccak256(abi.encode(PERMIT_TYPE_HASH, owner, nonce))));
        require(ecrecover(digest, v, r, s) == device, "invalid signature");
    }

    function register(address deviceContract, uint256 tokenId, address device, bytes32 hash, string calldata uri, uint8 v, bytes32 r, bytes32 s) external payable {
        require(device != address(0), "device is the zero address");
        require(!registeredNFT[deviceContract][tokenId], "nft already used");
        require(records[device].hash == bytes32(0), "device exists");
        checkPermit(msg.sender, device, v, r, s);
        require(hash != bytes32(0), "empty hash");
        records[device] = Record(hash, uri);
        ids[device] = tokenId;
        registeredNFT[deviceContract][tokenId] = true;
        emit NewDevice(device, msg.sender, hash, uri);
    }

    function update(address device, bytes32 hash, string calldata uri, uint8 v, bytes32 r, bytes32 s) external deviceExists(device) {
        checkPermit(msg.sender, device, v, r, s);
        require(hash != bytes32(0), "empty hash");
        records[device] = Record(hash, uri);
        emit UpdateDevice(device, msg.sender, hash, uri);
    }

    function permitHash(address owner, address device) external view returns (bytes32) {
        return keccak256(abi.encode(PERMIT_TYPE_HASH, owner, _nonces[device]));
    }

    function nonces(address device) external view returns (uint256) {
        return _nonces[device];
    }

    function exists(address device) external view returns (bool) {
        return records[device].hash != bytes32(0);
    }

    function documentID(address device) public pure returns (string memory) {
        bytes memory hexd = "0123456789abcdef";
        bytes memory out = new bytes(42);
        out[0] = "0";
        out[1] = "x";
        uint160 a = uint160(device);
        for (uint256 i = 41; i > 1; i--) {
            out[i] = hexd[a & 0xf];
            a >>= 4;
        }
        return string(abi.encodePacked(METHOD, out));
    }

    function documentHash(address device) external view deviceExists(device) returns (bytes32) {
        return records[device].hash;
    }

    function documentURI(address device) external view deviceExists(device) returns (string memory) {
        return records[device].uri;
    }

    function deviceTokenId(address device) external view deviceExists(device) returns (uint256) {
        return ids[device];
    }
}
