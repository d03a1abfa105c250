// Code generated via abigen V2 - DO NOT EDIT.
// This file is a generated binding and any manual changes will be lost.

package contract

import (
	"bytes"
	"errors"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Reference imports to suppress errors if they are not otherwise used.
var (
	_ = bytes.Equal
	_ = errors.New
	_ = big.NewInt
	_ = common.Big1
	_ = types.BloomLookup
	_ = abi.ConvertType
)

// ColdchainAnchorMetaData contains all meta data concerning the ColdchainAnchor contract.
var ColdchainAnchorMetaData = bind.MetaData{
	ABI: "[{\"inputs\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"internalType\":\"uint64\",\"name\":\"blockNumber\",\"type\":\"uint64\"}],\"name\":\"AlreadyAnchored\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"ZeroRoot\",\"type\":\"error\"},{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"indexed\":false,\"internalType\":\"uint64\",\"name\":\"epoch\",\"type\":\"uint64\"}],\"name\":\"Anchored\",\"type\":\"event\"},{\"inputs\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"internalType\":\"uint64\",\"name\":\"epoch\",\"type\":\"uint64\"}],\"name\":\"anchor\",\"outputs\":[],\"stateMutability\":\"nonpayable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"}],\"name\":\"anchoredAt\",\"outputs\":[{\"internalType\":\"uint64\",\"name\":\"blockNumber\",\"type\":\"uint64\"},{\"internalType\":\"uint64\",\"name\":\"timestamp\",\"type\":\"uint64\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"}],\"name\":\"epochOf\",\"outputs\":[{\"internalType\":\"uint64\",\"name\":\"\",\"type\":\"uint64\"}],\"stateMutability\":\"view\",\"type\":\"function\"}]",
	ID:  "ColdchainAnchor",
	Bin: "0x6080604052348015600e575f5ffd5b506102bc8061001c5f395ff3fe608060405234801561000f575f5ffd5b506004361061003f575f3560e01c80639591a61014610043578063d3b8fe9b1461009e578063db2c4aca146100e7575b5f5ffd5b610078610051366004610235565b5f9081526020819052604090205467ffffffffffffffff80821692600160401b9092041690565b6040805167ffffffffffffffff9384168152929091166020830152015b60405180910390f35b6100ce6100ac366004610235565b5f90815260208190526040902054600160801b900467ffffffffffffffff1690565b60405167ffffffffffffffff9091168152602001610095565b6100fa6100f536600461024c565b6100fc565b005b8161011a5760405163b263ae7360e01b815260040160405180910390fd5b5f8281526020819052604090205467ffffffffffffffff16801561016857604051637332e7a760e01b81526004810184905267ffffffffffffffff8216602482015260440160405180910390fd5b6040805160608101825267ffffffffffffffff438116825242811660208084019182528683168486019081525f898152918290529085902093518454925191518416600160801b0267ffffffffffffffff60801b19928516600160401b026fffffffffffffffffffffffffffffffff19909416919094161791909117161790555183907f41c3f410f5c8ac36bb46b1dccef0de0f964087c9e688795fa02ecfa2c20b3fe49061022890859067ffffffffffffffff91909116815260200190565b60405180910390a2505050565b5f60208284031215610245575f5ffd5b5035919050565b5f5f6040838503121561025d575f5ffd5b82359150602083013567ffffffffffffffff8116811461027b575f5ffd5b80915050925092905056fea2646970667358221220fa0a1345028c1827784ece7d4b33f2dd2314edede8a8c1cf5efe639deda2bec764736f6c634300081e0033",
}

// ColdchainAnchor is an auto generated Go binding around an Ethereum contract.
type ColdchainAnchor struct {
	abi abi.ABI
}

// GetABI returns the ABI associated with this contract binding.
func (c *ColdchainAnchor) GetABI() abi.ABI {
	return c.abi
}

// NewColdchainAnchor creates a new instance of ColdchainAnchor.
func NewColdchainAnchor() *ColdchainAnchor {
	parsed, err := ColdchainAnchorMetaData.ParseABI()
	if err != nil {
		panic(errors.New("invalid ABI: " + err.Error()))
	}
	return &ColdchainAnchor{abi: *parsed}
}

// Instance creates a wrapper for a deployed contract instance at the given address.
// Use this to create the instance object passed to abigen v2 library functions Call, Transact, etc.
func (c *ColdchainAnchor) Instance(backend bind.ContractBackend, addr common.Address) *bind.BoundContract {
	return bind.NewBoundContract(addr, c.abi, backend, backend, backend)
}

// PackAnchor is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xdb2c4aca.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function anchor(bytes32 root, uint64 epoch) returns()
func (coldchainAnchor *ColdchainAnchor) PackAnchor(root [32]byte, epoch uint64) []byte {
	enc, err := coldchainAnchor.abi.Pack("anchor", root, epoch)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackAnchor is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xdb2c4aca.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function anchor(bytes32 root, uint64 epoch) returns()
func (coldchainAnchor *ColdchainAnchor) TryPackAnchor(root [32]byte, epoch uint64) ([]byte, error) {
	return coldchainAnchor.abi.Pack("anchor", root, epoch)
}

// PackAnchoredAt is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x9591a610.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function anchoredAt(bytes32 root) view returns(uint64 blockNumber, uint64 timestamp)
func (coldchainAnchor *ColdchainAnchor) PackAnchoredAt(root [32]byte) []byte {
	enc, err := coldchainAnchor.abi.Pack("anchoredAt", root)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackAnchoredAt is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x9591a610.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function anchoredAt(bytes32 root) view returns(uint64 blockNumber, uint64 timestamp)
func (coldchainAnchor *ColdchainAnchor) TryPackAnchoredAt(root [32]byte) ([]byte, error) {
	return coldchainAnchor.abi.Pack("anchoredAt", root)
}

// AnchoredAtOutput serves as a container for the return parameters of contract
// method AnchoredAt.
type AnchoredAtOutput struct {
	BlockNumber uint64
	Timestamp   uint64
}

// UnpackAnchoredAt is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0x9591a610.
//
// Solidity: function anchoredAt(bytes32 root) view returns(uint64 blockNumber, uint64 timestamp)
func (coldchainAnchor *ColdchainAnchor) UnpackAnchoredAt(data []byte) (AnchoredAtOutput, error) {
	out, err := coldchainAnchor.abi.Unpack("anchoredAt", data)
	outstruct := new(AnchoredAtOutput)
	if err != nil {
		return *outstruct, err
	}
	outstruct.BlockNumber = *abi.ConvertType(out[0], new(uint64)).(*uint64)
	outstruct.Timestamp = *abi.ConvertType(out[1], new(uint64)).(*uint64)
	return *outstruct, nil
}

// PackEpochOf is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xd3b8fe9b.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function epochOf(bytes32 root) view returns(uint64)
func (coldchainAnchor *ColdchainAnchor) PackEpochOf(root [32]byte) []byte {
	enc, err := coldchainAnchor.abi.Pack("epochOf", root)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackEpochOf is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xd3b8fe9b.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function epochOf(bytes32 root) view returns(uint64)
func (coldchainAnchor *ColdchainAnchor) TryPackEpochOf(root [32]byte) ([]byte, error) {
	return coldchainAnchor.abi.Pack("epochOf", root)
}

// UnpackEpochOf is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0xd3b8fe9b.
//
// Solidity: function epochOf(bytes32 root) view returns(uint64)
func (coldchainAnchor *ColdchainAnchor) UnpackEpochOf(data []byte) (uint64, error) {
	out, err := coldchainAnchor.abi.Unpack("epochOf", data)
	if err != nil {
		return *new(uint64), err
	}
	out0 := *abi.ConvertType(out[0], new(uint64)).(*uint64)
	return out0, nil
}

// ColdchainAnchorAnchored represents a Anchored event raised by the ColdchainAnchor contract.
type ColdchainAnchorAnchored struct {
	Root  [32]byte
	Epoch uint64
	Raw   *types.Log // Blockchain specific contextual infos
}

const ColdchainAnchorAnchoredEventName = "Anchored"

// ContractEventName returns the user-defined event name.
func (ColdchainAnchorAnchored) ContractEventName() string {
	return ColdchainAnchorAnchoredEventName
}

// UnpackAnchoredEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event Anchored(bytes32 indexed root, uint64 epoch)
func (coldchainAnchor *ColdchainAnchor) UnpackAnchoredEvent(log *types.Log) (*ColdchainAnchorAnchored, error) {
	event := "Anchored"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != coldchainAnchor.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(ColdchainAnchorAnchored)
	if len(log.Data) > 0 {
		if err := coldchainAnchor.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range coldchainAnchor.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}

// UnpackError attempts to decode the provided error data using user-defined
// error definitions.
func (coldchainAnchor *ColdchainAnchor) UnpackError(raw []byte) (any, error) {
	if bytes.Equal(raw[:4], coldchainAnchor.abi.Errors["AlreadyAnchored"].ID.Bytes()[:4]) {
		return coldchainAnchor.UnpackAlreadyAnchoredError(raw[4:])
	}
	if bytes.Equal(raw[:4], coldchainAnchor.abi.Errors["ZeroRoot"].ID.Bytes()[:4]) {
		return coldchainAnchor.UnpackZeroRootError(raw[4:])
	}
	return nil, errors.New("Unknown error")
}

// ColdchainAnchorAlreadyAnchored represents a AlreadyAnchored error raised by the ColdchainAnchor contract.
type ColdchainAnchorAlreadyAnchored struct {
	Root        [32]byte
	BlockNumber uint64
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error AlreadyAnchored(bytes32 root, uint64 blockNumber)
func ColdchainAnchorAlreadyAnchoredErrorID() common.Hash {
	return common.HexToHash("0x7332e7a7e9907fe11f7753d9c80edf26f95b52ef3f583a8231ec680bddb394f0")
}

// UnpackAlreadyAnchoredError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error AlreadyAnchored(bytes32 root, uint64 blockNumber)
func (coldchainAnchor *ColdchainAnchor) UnpackAlreadyAnchoredError(raw []byte) (*ColdchainAnchorAlreadyAnchored, error) {
	out := new(ColdchainAnchorAlreadyAnchored)
	if err := coldchainAnchor.abi.UnpackIntoInterface(out, "AlreadyAnchored", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// ColdchainAnchorZeroRoot represents a ZeroRoot error raised by the ColdchainAnchor contract.
type ColdchainAnchorZeroRoot struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error ZeroRoot()
func ColdchainAnchorZeroRootErrorID() common.Hash {
	return common.HexToHash("0xb263ae738e814ca9af6ee56bb85daa47624e790421913c947dcba2aac07cfdbd")
}

// UnpackZeroRootError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error ZeroRoot()
func (coldchainAnchor *ColdchainAnchor) UnpackZeroRootError(raw []byte) (*ColdchainAnchorZeroRoot, error) {
	out := new(ColdchainAnchorZeroRoot)
	if err := coldchainAnchor.abi.UnpackIntoInterface(out, "ZeroRoot", raw); err != nil {
		return nil, err
	}
	return out, nil
}
