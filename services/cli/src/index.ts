export { uuidv7 } from './uuid.js';
export { demoPageView } from './commands/demo.js';
