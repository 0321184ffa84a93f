export { secretProblem, signedHeaders, type SignedHeaders } from './signing.ts';
