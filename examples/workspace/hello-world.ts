// Prints its result as JSON on stdout: that line is the execution's result.
const result = {
  message: "Hello, World!",
  timestamp: new Date(0).toISOString(),
  status: "success",
};
console.log(JSON.stringify(result));
