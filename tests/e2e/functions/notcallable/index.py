main = 'not a function'
