// One error base class for smesh with stable codes, so callers and tests match on `code`, never on message text.

export type SmeshErrorCode =
  | 'SMESH_ERR_CONFIG'
  | 'SMESH_ERR_BPF'
  | 'SMESH_ERR_NATIVE'
  | 'SMESH_ERR_IDENTITY'
  | 'SMESH_ERR_NO_ORIGINAL_DST'
  | 'SMESH_ERR_LOOP'
  | 'SMESH_ERR_UNKNOWN_DESTINATION'
  | 'SMESH_ERR_NO_ENDPOINT'
  | 'SMESH_ERR_CONNECT'
  | 'SMESH_ERR_HBONE'
  | 'SMESH_ERR_TLS'
  | 'SMESH_ERR_BIND';

export class SmeshError extends Error {
  readonly code: SmeshErrorCode;

  constructor(code: SmeshErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SmeshError';
    this.code = code;
  }
}
