# Evaluated by ruby.wasm's command driver (command.wat) once the interpreter is
# up: `ruby.wasm [RUBY OPTIONS] SCRIPT [ARGS]` runs SCRIPT like
# `ruby SCRIPT ARGS`. ruby-init has parsed the options, so ARGV holds SCRIPT
# and ARGS. `exit N` and `abort` end the program with their status; any other
# uncaught exception is printed to stderr and exits 1, as ruby does. The build
# has no ruby_cleanup to call, so at_exit blocks are kept and run here.
wisp_at_exit = []
wisp_register = proc do |&block|
  raise ArgumentError, 'called without a block' unless block
  wisp_at_exit << block
  block
end
Kernel.define_method(:at_exit, &wisp_register)
Kernel.send(:private, :at_exit)
Kernel.define_singleton_method(:at_exit, &wisp_register)

# Prints an uncaught error as ruby does, without this file's frames.
wisp_report = lambda do |error|
  trace = error.backtrace || []
  trace = trace.take_while { |line| !line.start_with?('eval:') }
  if trace.empty? # raised here, not in the script: the script could not be loaded
    $stderr.write("ruby.wasm: #{error.message} (#{error.class})\n")
  else
    error.set_backtrace(trace)
    $stderr.write(error.full_message(highlight: false))
  end
  1
end

status =
  begin
    script = ARGV.shift or abort('usage: ruby.wasm [RUBY OPTIONS] SCRIPT [ARGS...]')
    $0 = script
    load(script)
    0
  rescue SystemExit => e
    e.status
  rescue Exception => e
    wisp_report.call(e)
  end
until wisp_at_exit.empty?
  begin
    wisp_at_exit.pop.call
  rescue SystemExit => e
    status = e.status
  rescue Exception => e
    status = wisp_report.call(e)
  end
end
begin
  $stdout.flush
  $stderr.flush
rescue Exception
  nil
end
Process.exit!(status)
