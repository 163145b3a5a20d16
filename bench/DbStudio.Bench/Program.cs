// DbStudio benchmarks. Each prints its figures next to a baseline measured in the same run.
//   dotnet run -c Release --project bench/DbStudio.Bench -- provisioning [n]
//   dotnet run -c Release --project bench/DbStudio.Bench -- rest [seconds]      (needs wrk: apt-get install wrk)
//   dotnet run -c Release --project bench/DbStudio.Bench -- datapage [runs]
//   dotnet run -c Release --project bench/DbStudio.Bench -- keyset [runs] [rows]   (next page at the last row but 50 vs the first page)
//   dotnet run -c Release --project bench/DbStudio.Bench -- stream [subscribers] [inserts/s] [seconds]
//   dotnet run -c Release --project bench/DbStudio.Bench -- stream-users [subscribers] [inserts/s] [seconds]   (distinct signed-in users, own rows)
//   dotnet run -c Release --project bench/DbStudio.Bench -- csv [rows]   (import/export vs psql \copy)
//   dotnet run -c Release --project bench/DbStudio.Bench -- fuzz [inputs]
//   dotnet run -c Release --project bench/DbStudio.Bench -- soak [seconds] [projects] [connections]   (needs wrk)
//   dotnet run -c Release --project bench/DbStudio.Bench -- tenants [projects]   (create, first DDL, cold/warm REST, memory per bucket)
//   dotnet run -c Release --project bench/DbStudio.Bench -- connect-cost [logins] [samples]   (a new project session's cost)
//   dotnet run -c Release --project bench/DbStudio.Bench -- rest-spread [projects] [seconds] [max_connections]   (needs wrk; 1, 100, 1,000, all projects)
using DbStudio.Bench;

var what = args.FirstOrDefault() ?? "provisioning";
switch (what)
{
    case "provisioning":
        await ProvisioningBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 100);
        return 0;
    case "datapage":
        await DataPageBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 15);
        return 0;
    case "keyset":
        await DataPageBench.KeysetAsync(args.Length > 1 ? int.Parse(args[1]) : 31, args.Length > 2 ? int.Parse(args[2]) : 1_000_000);
        return 0;
    case "rest-serve":
        await RestBench.RunAsync(0, serveOnly: true);
        return 0;
    case "rest":
        await RestBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 10);
        return 0;
    case "stream":
        await StreamBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 1000, args.Length > 2 ? int.Parse(args[2]) : 200,
            args.Length > 3 ? int.Parse(args[3]) : 30);
        return 0;
    case "stream-users":
        await StreamBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 200, args.Length > 2 ? int.Parse(args[2]) : 200,
            args.Length > 3 ? int.Parse(args[3]) : 30, signedIn: true);
        return 0;
    case "csv":
        await CsvBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 1_000_000);
        return 0;
    case "soak":
        await SoakBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 300, args.Length > 2 ? int.Parse(args[2]) : 50,
            args.Length > 3 ? int.Parse(args[3]) : 64);
        return 0;
    case "tenants":
        await TenantsBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 1000);
        return 0;
    case "rest-spread":
        await RestSpreadBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 2000, args.Length > 2 ? int.Parse(args[2]) : 10,
            args.Length > 3 ? int.Parse(args[3]) : 0, args.Length > 4 ? int.Parse(args[4]) : 3);
        return 0;
    case "connect-cost":
        await ConnectCostBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 4000, args.Length > 2 ? int.Parse(args[2]) : 200);
        return 0;
    case "fuzz":
        return await FuzzBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 100_000);
    case "stream-serve":
        await StreamBench.ServeAsync();
        return 0;
    default:
        Console.Error.WriteLine($"unknown benchmark '{what}'. Known: provisioning, rest, datapage, keyset, stream, stream-users, csv, fuzz, soak, tenants, rest-spread");
        return 2;
}
